//! Both ends of real HTTP over loopback for the tests: the application
//! under test served on a free port ([`serve`], [`serve_actix`], with
//! [`dev_layer`] / [`dev_exchange`]), and a browser-like client whose
//! cookie jar the test holds ([`Client`]).

#![allow(dead_code)]

mod client;
mod server;

// Each test binary uses a part.
#[allow(unused_imports)]
pub use client::{Answer, COOKIE, Client};
pub use server::*;
