//! `berth run`: the supervisor. One thread, one epoll set; every app's lifecycle is
//! owned by the loop, and every change arrives as an event.

pub mod logs;
pub mod policy;
pub mod probe;
