//! The layers under the registry client, each a small file that imports only the ones listed before
//! it: [`http`] sends one request, [`answer`] turns an answer that is not the one asked for into a
//! typed error, [`retry`] sends again when that may help, and [`auth`] answers the registry's
//! authentication challenge with credentials that go to the registry's own origin only. The client
//! (`Registry` in `client.rs`, above this module) stacks them and adds scheme discovery and redirects.

pub(crate) mod answer;
pub(crate) mod auth;
pub(crate) mod http;
pub(crate) mod retry;
