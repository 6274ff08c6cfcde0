//! The request flows: authenticate, route, and run each endpoint as a sans-IO state machine
//! that plans Drupal calls and turns the answers into the SCIM response.

pub mod adopt;
pub mod adoption;
pub mod audit;
pub mod auth;
pub mod discovery;
pub mod exchange;
pub mod groups;
pub mod lists;
pub mod membership;
pub mod paging;
pub mod request;
pub mod root_search;
pub mod scope;
pub mod users;
