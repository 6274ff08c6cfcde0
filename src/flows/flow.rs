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
use crate::runtime::intents::SharedIntent;
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

/// No `Debug` bound: it would keep every flow's `Debug` code in the module through the vtables.
pub(crate) trait Flow {
    /// Drupal's replies to the last calls, in their order: the next calls, or the answer.
    /// An error is the answer.
    fn on_replies(
        &mut self,
        cx: &mut Cx<'_, '_>,
        replies: Vec<DrupalReply>,
    ) -> Result<Step, ScimError>;

    /// The flow answered (or failed): the unlocks of what it holds, returned for the host to
    /// apply (the scope is only read: nothing waits for their outcome).
    fn release(&mut self, _scope: &LockScope) -> Vec<SharedIntent> {
        Vec::new()
    }

    /// The stream ended before the answer: the intents that let go of what the flow holds
    /// at once, except a lock whose Drupal write may still be in flight, kept
    /// `write_grace_ms` more.
    fn abandon(&mut self, _scope: &LockScope, _write_grace_ms: u64) -> Vec<SharedIntent> {
        Vec::new()
    }

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

/// What a flow's unit tests start it with: a configuration, a lock table, a clock.
#[cfg(test)]
pub(crate) mod testing {
    #![allow(clippy::unwrap_used)]
    use super::Cx;
    use crate::config::{Config, DrupalConfig, TokenDigest, UserDelete};
    use crate::flows::audit::Outcome;
    use crate::flows::scope::LockScope;
    use crate::flows::user_view::UserView;
    use crate::runtime::intents::{SharedIntent, SharedPort};
    use crate::runtime::locks::MemoryLocks;
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};

    pub(crate) fn config() -> Config {
        Config {
            base_path: "/scim/v2".into(),
            tokens: vec![TokenDigest {
                label: "jc".into(),
                sha256: Sha256::digest(b"secret").into(),
            }],
            drupal: DrupalConfig {
                cluster: "drupal".into(),
                authority: "drupal.local".into(),
                jsonapi_prefix: "/jsonapi".into(),
                timeout_ms: 1000,
                user_delete: UserDelete::Cancel,
            },
            max_body_bytes: 1_048_576,
            public_url: None,
            service_username: "scim-service".into(),
            protection: crate::config::protection::Protection {
                service_username: "scim-service".into(),
                writable_roles: crate::config::protection::writable_roles(&[], &[]),
                service_uid: Default::default(),
            },
            groups: None,
            wait_cluster: None,
            adopt: Default::default(),
            rate_limits: Vec::new(),
            limits: crate::config::Limits::default(),
            log_format: crate::config::LogFormat::Text,
            mapping: crate::scim::mapping::UserMapping::from_config(None).unwrap(),
        }
    }

    pub(crate) fn view() -> UserView {
        UserView {
            base_url: "http://gw.example/scim/v2".into(),
            ..UserView::default()
        }
    }

    pub(crate) fn user(uuid: &str, uid: u64, name: &str) -> Value {
        json!({"data": {"type": "user--user", "id": uuid, "attributes": {"display_name": name,
            "name": name, "mail": format!("{name}@example.com"), "status": true,
            "created": "2026-11-28T11:44:27+00:00", "changed": "2026-11-28T11:44:27+00:00",
            "drupal_internal__uid": uid}, "relationships": {"roles": {"data": []}}}})
    }

    /// One request's surroundings; `cx` lends them to a flow's step.
    pub(crate) struct Rig {
        pub(crate) config: Config,
        pub(crate) locks: MemoryLocks,
        pub(crate) outcome: Outcome,
        pub(crate) now_ms: u64,
    }

    impl Rig {
        pub(crate) fn new() -> Self {
            Rig {
                config: config(),
                locks: MemoryLocks::default(),
                outcome: Outcome::for_path("/scim/v2", "/scim/v2/Users"),
                now_ms: 1,
            }
        }

        /// Runs `f` as the request `owner` would, then applies the intents the step
        /// returned (as the host does once a step is over).
        pub(crate) fn with<T>(&mut self, owner: &str, f: impl FnOnce(&mut Cx<'_, '_>) -> T) -> T {
            let mut scope = LockScope::new(&mut self.locks, self.now_ms, owner, 1000);
            let mut cx = Cx {
                config: &self.config,
                scope: &mut scope,
                outcome: &mut self.outcome,
            };
            let out = f(&mut cx);
            let returned = scope.take_returned();
            self.apply(returned);
            out
        }

        /// Applies intents a flow returned (its release, or what it abandons).
        pub(crate) fn apply(&mut self, intents: Vec<SharedIntent>) {
            for intent in intents {
                self.locks.apply(intent);
            }
        }
    }
}
