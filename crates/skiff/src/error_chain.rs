//! An error and its causes on one line, for the places that print a
//! library error themselves rather than through `anyhow`: the same shape
//! as anyhow's `{:#}`, each cause once.

use std::error::Error;

/// `error: cause: cause of the cause`.
pub fn render(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        line.push_str(": ");
        line.push_str(&next.to_string());
        cause = next.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read notes")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_follows_once() {
        let error = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(render(&error), "cannot read notes: disk on fire");
        assert_eq!(render(&std::io::Error::other("alone")), "alone");
    }
}
