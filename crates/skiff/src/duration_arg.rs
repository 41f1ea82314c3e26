//! The one way every `skiff` command takes a duration: humantime values
//! such as `500ms`, `20s`, `2m` or `1m 30s`, checked against the flag's
//! bounds by clap, so that a bad value is reported (and exits 2) like any
//! other bad flag.

use std::time::Duration;

/// A clap value parser for a duration between `min` and `max`, both
/// included.
pub fn between(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text| {
        let duration = parse(text)?;
        if duration < min || duration > max {
            return Err(format!(
                "must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ));
        }
        Ok(duration)
    }
}

/// A clap value parser for a duration in whole seconds, at least one.
pub fn whole_seconds(text: &str) -> Result<Duration, String> {
    let duration = parse(text)?;
    if duration.is_zero() || duration.subsec_nanos() != 0 {
        return Err("must be a whole number of seconds, at least 1s".into());
    }
    Ok(duration)
}

/// `duration` as one word that [`parse`] reads back exactly, for commands
/// the tool prints: whole seconds as `5s`, anything else in milliseconds
/// (`1500ms`) or, below a millisecond, nanoseconds.
pub fn render(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{}ns", duration.as_nanos())
    }
}

fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|error| format!("not a duration like 500ms, 20s or 2m ({error})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn humantime_values_parse() {
        let any = between(Duration::ZERO, HOUR);
        assert_eq!(any("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(any("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(any("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(any("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(any(" 0 "), Ok(Duration::ZERO));
    }

    #[test]
    fn a_bare_number_or_a_word_is_refused_with_examples() {
        let any = between(Duration::ZERO, HOUR);
        for bad in ["20", "soon", "-1s", ""] {
            let error = any(bad).expect_err(bad);
            assert!(error.contains("like 500ms, 20s or 2m"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_bounds_are_included_and_enforced() {
        let bounded = between(SECOND, HOUR);
        assert_eq!(bounded("1s"), Ok(SECOND));
        assert_eq!(bounded("1h"), Ok(HOUR));
        assert_eq!(
            bounded("999ms"),
            Err("must be between 1s and 1h".to_string())
        );
        assert!(bounded("61m").is_err());
    }

    #[test]
    fn whole_seconds_refuses_fractions_and_zero() {
        assert_eq!(whole_seconds("1m"), Ok(Duration::from_secs(60)));
        assert!(whole_seconds("1500ms").is_err());
        assert!(whole_seconds("0s").is_err());
    }

    #[test]
    fn rendered_durations_parse_back_to_themselves() {
        for duration in [
            Duration::from_secs(5),
            Duration::from_secs(120),
            Duration::from_millis(1500),
            Duration::from_nanos(1_000_001),
        ] {
            let rendered = render(duration);
            assert!(!rendered.contains(' '), "{rendered}");
            assert_eq!(parse(&rendered), Ok(duration), "{rendered}");
        }
        assert_eq!(render(Duration::from_millis(1500)), "1500ms");
    }
}
