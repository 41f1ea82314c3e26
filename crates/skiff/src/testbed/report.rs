//! What the test bed prints: progress lines with the time since the start,
//! and each property's figures with PASS or FAIL.

use std::time::{Duration, Instant};

/// Prints progress and collects the properties' verdicts.
pub struct Report {
    started: Instant,
    properties: Vec<(String, bool)>,
}

impl Report {
    /// A report whose clock starts now.
    pub fn new() -> Report {
        Report {
            started: Instant::now(),
            properties: Vec::new(),
        }
    }

    /// Prints a progress line: elapsed time, then `message`.
    pub fn progress(&self, message: impl std::fmt::Display) {
        eprintln!("[{:>6.1}s] {message}", self.started.elapsed().as_secs_f64());
    }

    /// Prints a figure that is measured but not judged.
    pub fn figure(&self, name: &str, figures: impl std::fmt::Display) {
        println!("       {name}: {figures}");
    }

    /// Prints property `name` with its `figures` and verdict.
    pub fn property(&mut self, name: &str, figures: impl std::fmt::Display, pass: bool) {
        let verdict = if pass { "PASS" } else { "FAIL" };
        println!("{verdict}   {name}: {figures}");
        self.properties.push((name.to_string(), pass));
    }

    /// The properties that failed.
    pub fn failed(&self) -> Vec<&str> {
        let failed = self.properties.iter().filter(|(_, pass)| !pass);
        failed.map(|(name, _)| name.as_str()).collect()
    }
}

impl Default for Report {
    fn default() -> Report {
        Report::new()
    }
}

/// `duration` in milliseconds and in election timeouts, e.g.
/// `412 ms (1.37 election timeouts)`.
pub fn in_timeouts(duration: Duration, election_timeout: Duration) -> String {
    format!(
        "{} ms ({:.2} election timeouts)",
        duration.as_millis(),
        duration.as_secs_f64() / election_timeout.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_properties_are_listed_and_passed_ones_not() {
        let mut report = Report::new();
        report.property("a", "1", true);
        report.property("b", "2", false);
        assert_eq!(report.failed(), ["b"]);
    }

    #[test]
    fn durations_are_given_in_election_timeouts_too() {
        let text = in_timeouts(Duration::from_millis(450), Duration::from_millis(300));
        assert_eq!(text, "450 ms (1.50 election timeouts)");
    }
}
