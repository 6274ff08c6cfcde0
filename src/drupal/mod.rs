//! Drupal's side: the JSON:API and core REST dialect (calls, documents, error mapping), group
//! terms, filter translation, the startup probe and the authentication gate to Drupal.

pub mod adopt;
pub mod adopt_preview;
pub mod delivery;
pub mod groups;
pub mod jsonapi;
pub mod probe;
pub mod query;
pub mod unique;
pub mod upstream;
pub mod user_filter;
