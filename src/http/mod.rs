//! The HTTP API's codecs, sans-IO like `ws/` and `control/`: a request head from bytes
//! (`request`), a route and JSON params turned into the control command they stand for and a
//! control reply into JSON (`api`), response bytes (`response`), and the Prometheus text of
//! `/metrics` (`metrics`), and the admin page of `GET /` (`admin`). The connection that reads and writes them is
//! `server::http_conn`; what a command does is `server::commands`, the control socket's.

pub mod admin;
pub mod api;
pub mod metrics;
pub mod request;
pub mod response;
