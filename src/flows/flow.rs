//! The one shape of every SCIM operation's flow. A flow is started by its own constructor,
//! which takes the request and returns the flow with its first step (Drupal calls, or the
//! answer); Drupal's replies advance it until it answers; the router then releases what it
//! holds and reads its report. A stream that ends early abandons it.

use crate::config::Config;
use crate::flows::adoption::Adoption;
use crate::flows::audit::Outcome;
use crate::flows::groups::LeftOutReport;
use crate::flows::scope::LockScope;
use crate::http::{DrupalReply, Step};
use crate::scim::error::ScimError;

/// What a flow's steps use besides Drupal's replies: the configuration, the shared locks and
/// clock, and the request's record for the log line.
pub(crate) struct Cx<'a, 'b> {
    pub(crate) config: &'a Config,
    pub(crate) scope: &'a mut LockScope<'b>,
    pub(crate) outcome: &'a mut Outcome,
}

/// What a flow tells the host besides its answer (log line and counters).
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// An existing account the request adopted (`adopt: "mail"`).
    pub(crate) adopted: Option<Adoption>,
    /// Group membership changes left out because the accounts are read-only to SCIM.
    pub(crate) left_out: Option<LeftOutReport>,
}

pub(crate) trait Flow: std::fmt::Debug {
    /// Drupal's replies to the last calls, in their order: the next calls, or the answer.
    /// An error is the answer.
    fn on_replies(
        &mut self,
        cx: &mut Cx<'_, '_>,
        replies: Vec<DrupalReply>,
    ) -> Result<Step, ScimError>;

    /// The flow answered (or failed): its locks go.
    fn release(&mut self, _scope: &mut LockScope) {}

    /// The stream ended before the answer: what the flow holds goes at once, except a lock
    /// whose Drupal write may still be in flight, kept `write_grace_ms` more.
    fn abandon(&mut self, scope: &mut LockScope, write_grace_ms: u64);

    /// Read once the flow answered.
    fn report(&mut self) -> Report {
        Report::default()
    }
}

/// A constructor's result for the router: the flow (to resume) and its first step.
pub(crate) type Started = (Option<Box<dyn Flow>>, Step);

/// Boxes a started flow for the router.
pub(crate) fn started<F: Flow + 'static>(
    result: Result<(F, Step), ScimError>,
) -> Result<Started, ScimError> {
    result.map(|(flow, step)| (Some(Box::new(flow) as Box<dyn Flow>), step))
}
