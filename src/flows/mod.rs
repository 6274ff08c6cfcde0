//! The request flows: authenticate, route, and run each endpoint as a sans-IO state machine
//! that plans Drupal calls and turns the answers into the SCIM response.

pub mod adopt;
pub mod adoption;
pub mod audit;
pub mod auth;
#[cfg(test)]
mod contention;
pub mod discovery;
pub mod exchange;
pub mod flow;
pub mod group_ops;
pub mod groups;
pub mod membership;
pub mod paging;
pub mod request;
pub mod root_search;
pub mod scope;
pub mod user_create;
pub mod user_edit;
pub mod user_list;
pub mod user_read;
pub mod user_save;
pub mod user_view;
