//! What the gate sends and receives: outbound calls with their purpose and credentials,
//! Drupal's replies with their `Set-Cookie`, and what the host is to do next.

use crate::http::{DrupalCall, DrupalReply};

/// Why a call goes out; the host reads `Set-Cookie` only where it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A call the exchange asked for.
    Exchange,
    /// A pause (Envoy's wait listener, or an anonymous status read standing in for one).
    Pause,
    Login,
    /// Asks Drupal whether the session is still logged in, or (basic mode) whether it
    /// accepts the credentials.
    StatusCheck,
}

/// A call ready to dispatch: the host adds `:authority`, `accept` and the timeout.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub call: DrupalCall,
    /// Authentication headers (lower-case names).
    pub headers: Vec<(&'static str, String)>,
    pub purpose: Purpose,
}

/// One reply, with the `Set-Cookie` headers Drupal sent, one per line (session mode reads
/// them).
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub reply: DrupalReply,
    pub set_cookie: Option<String>,
}

impl Arrival {
    pub fn plain(reply: DrupalReply) -> Self {
        Arrival {
            reply,
            set_cookie: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Dispatch these concurrently; hand every reply back, in order, to `receive`.
    Send(Vec<Outbound>),
    /// The replies to the exchange's calls, in the order it asked for them.
    Deliver(Vec<DrupalReply>),
}
