//! The SCIM side: schemas, the User resource, the filter grammar, PATCH, projection and the
//! SCIM errors. Knows nothing of Drupal's API; `mapping` is the one table naming Drupal fields.

pub mod dates;
pub mod error;
pub mod filter;
pub mod filter_eval;
pub mod mapping;
pub mod patch;
pub mod projection;
pub mod schema;
pub mod user;
pub mod values;
