//! Both ends of real HTTP over loopback for the tests: a browser-like
//! client whose cookie jar the test holds ([`Client`]).

#![allow(dead_code)]

mod client;

pub use client::{Answer, COOKIE, Client};
