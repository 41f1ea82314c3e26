//! `skiff up --ui`: placeholder, filled in below.
