//! The tasks a `/Groups` request queues (read the term, check the name, walk the members,
//! change memberships, …) as data, and what a task's round does to the queue.

use crate::drupal::groups::Term;
use crate::flows::paging::{Pager, Read};
use crate::http::DrupalCall;
use crate::scim::error::ScimError;
use crate::scim::filter::Filter;

#[derive(Debug)]
pub(crate) enum GroupTask {
    GetTerm {
        id: String,
    },
    /// Lock the name and check no other group has it.
    CheckName {
        name: String,
        waits: u32,
        /// When the check started waiting for the name's lock.
        since: Option<u64>,
    },
    CreateTerm {
        name: String,
        external_id: Option<String>,
    },
    /// The create failed without a clear refusal (a time-out, a 5xx, a lost answer): Drupal
    /// may have created the term all the same. Look for it (under the name's lock still), so
    /// that the answer never hides a group behind "retry".
    FindCreated {
        name: String,
        failure: ScimError,
    },
    RenameTerm {
        name: String,
    },
    /// Set the term's description to the group's `externalId` (if it differs).
    SetExternalId {
        value: Option<String>,
    },
    /// Read every member of the terms at hand (pages of a large group several at a time), up
    /// to the request's member cap.
    Walk,
    /// Make sure Drupal accepted the service account, unless a user was already read.
    CheckAuth,
    /// Check that the users to add exist, and that SCIM may write every user named,
    /// before changing anything.
    CheckUsers {
        adds: Vec<String>,
        removes: Vec<String>,
    },
    /// Work out the membership changes from what is now known.
    Plan,
    LoadRoles,
    Members,
    DeleteTerm,
    /// After a delete: repair users that still reference the term (a member added
    /// concurrently, or a retired account).
    SweepDangling,
    ListTerms(Box<TermListing>),
}

/// A page of groups being read (`GET /Groups`).
#[derive(Debug)]
pub(crate) struct TermListing {
    pub(crate) conditions: Vec<(String, String)>,
    pub(crate) sort: Option<String>,
    pub(crate) offset: usize,
    pub(crate) count: usize,
    pub(crate) start_index: usize,
    /// A filter Drupal cannot answer exactly: every candidate is read (a superset) and
    /// checked in the gateway.
    pub(crate) post_filter: Option<Filter>,
    /// Reads and counts the window exactly (`paging`); not with a `post_filter`, which reads
    /// every candidate anyway.
    pub(crate) pager: Option<Pager>,
    /// The reads of the round in flight.
    pub(crate) reads: Vec<Read>,
    /// The window's pages read: (offset, terms).
    pub(crate) pages: Vec<(usize, Vec<Term>)>,
}

/// What a task's round does to the queue of tasks.
#[derive(Debug)]
pub(crate) enum QueueChange {
    /// The task goes on: more calls, or a wait.
    Stay,
    /// The task is done.
    Done,
    /// The task is done; these tasks come next, in this order.
    DoneThen(Vec<GroupTask>),
    /// These tasks come first, in this order; the task follows them.
    First(Vec<GroupTask>),
}

/// What a task does in a round: its calls, or no call and a change of the queue.
#[derive(Debug)]
pub(crate) enum TaskCalls {
    Send(Vec<DrupalCall>),
    Skip(QueueChange),
}

/// The answer a group request owes once its tasks are done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum GroupAnswer {
    Created,
    Resource,
    NoContent,
    List,
}
