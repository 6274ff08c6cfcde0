//! What adopting existing accounts (`adopt: "mail"`) keeps between the steps of a request
//! and how it shapes users and writes: the IdP sees each user's e-mail address as userName,
//! and writes never change the Drupal login name unless the site opted in. The flow itself is
//! `flows::adopt`.

use crate::config::Config;
use crate::drupal::adopt;
use crate::drupal::jsonapi::DrupalUser;
use crate::scim::error::ScimError;
use crate::scim::user::UserWrite;
use serde_json::{Map, Value};

/// Where a request resolved an IdP identity to an existing account by e-mail: what the host
/// counts and logs as an adoption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adoption {
    pub uid: u64,
    pub on: AdoptedOn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdoptedOn {
    /// A lookup answered with an account whose login name is not the IdP's userName.
    Lookup,
    /// A create landed on an existing account and wrote the IdP's attributes to it.
    Create,
}

impl AdoptedOn {
    pub fn as_str(self) -> &'static str {
        match self {
            AdoptedOn::Lookup => "lookup",
            AdoptedOn::Create => "create",
        }
    }

    /// The counter a host increments for it.
    pub fn metric(self) -> &'static str {
        match self {
            AdoptedOn::Lookup => "scim.adoptions.on.lookup",
            AdoptedOn::Create => "scim.adoptions.on.create",
        }
    }
}

#[derive(Debug)]
pub(crate) struct AdoptFlow {
    pub(crate) identity: String,
    pub(crate) purpose: Purpose,
    pub(crate) conditions: Vec<(String, String)>,
    pub(crate) next_offset: usize,
    pub(crate) candidates: Vec<DrupalUser>,
}

#[derive(Debug)]
pub(crate) enum Purpose {
    Lookup {
        start_index: usize,
        count: usize,
    },
    Create {
        write: UserWrite,
    },
    /// The create's attributes are being written to the existing account.
    Writing {
        uid: u64,
    },
}

/// The SCIM userName of a user while adopting is on: its e-mail address (its login name
/// when it has none).
pub fn user_name_of(user: &DrupalUser) -> &str {
    user.fields
        .get("mail")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| user.name())
}

/// Shows the userName the IdP knows (`scim_user`, PATCH's starting point).
pub(crate) fn present(user: &DrupalUser, resource: &mut Map<String, Value>) {
    if resource.contains_key("userName") {
        resource.insert("userName".into(), Value::String(user_name_of(user).into()));
    }
}

/// A PUT: the address is the identity, and the login name is kept (or follows, with
/// `adopt_rename`).
pub(crate) fn shape_put(config: &Config, write: &mut UserWrite) -> Result<(), ScimError> {
    if !config.adopt.by_mail {
        return Ok(());
    }
    let identity = adopt::write_identity(&mut write.fields)?;
    adopt::keep_login_name(&mut write.fields, identity.as_deref(), config.adopt.rename);
    Ok(())
}

/// A PATCH applied to the view (`present`): a changed userName or e-mail moves the address,
/// both changed must agree, and the login name stays unless renaming is on.
pub(crate) fn shape_patch(
    config: &Config,
    user: &DrupalUser,
    target: &mut Map<String, Value>,
) -> Result<(), ScimError> {
    if !config.adopt.by_mail {
        return Ok(());
    }
    let text =
        |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let old_mail = text(&user.fields, "mail").filter(|m| !m.is_empty());
    let new_name = text(target, "name");
    let new_mail = text(target, "mail");
    let name_changed = new_name.as_deref() != Some(user_name_of(user));
    let mail_changed = new_mail != old_mail;
    let keep = |target: &mut Map<String, Value>| {
        target.insert("name".into(), Value::String(user.name().into()));
    };
    if !name_changed && !mail_changed {
        keep(target);
        return Ok(());
    }
    let mut fields = Map::new();
    if let Some(n) = new_name.filter(|_| name_changed) {
        fields.insert("name".into(), Value::String(n));
    }
    if let Some(m) = new_mail.filter(|_| mail_changed) {
        fields.insert("mail".into(), Value::String(m));
    }
    let identity = adopt::write_identity(&mut fields)?;
    if let Some(id) = &identity {
        target.insert("mail".into(), Value::String(id.clone()));
    }
    if config.adopt.rename {
        if let Some(id) = identity {
            target.insert("name".into(), Value::String(id));
            return Ok(());
        }
    }
    keep(target);
    Ok(())
}
