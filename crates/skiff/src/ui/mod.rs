//! The timeline view: one self-contained HTML page that draws a recorded
//! run ([`page`]) for `skiff sim --html` and `skiff scenario --html`, and
//! the same page served live for a local cluster ([`live`], `skiff up --ui`).

pub mod live;
pub mod page;
