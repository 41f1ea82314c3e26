//! Majority arithmetic as pure functions.

use crate::types::LogIndex;

/// The highest index that at least `quorum` of `matched` have reached.
///
/// `matched` holds one match index per voter; it is sorted in place.
pub(crate) fn committed_index(matched: &mut [LogIndex], quorum: usize) -> LogIndex {
    debug_assert!(quorum >= 1 && quorum <= matched.len());
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[quorum - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The naive definition: the largest index that `quorum` voters have reached.
    fn naive(matched: &[LogIndex], quorum: usize) -> LogIndex {
        (0..=matched.iter().map(|m| m.0).max().unwrap_or(0))
            .rev()
            .map(LogIndex)
            .find(|candidate| matched.iter().filter(|m| *m >= candidate).count() >= quorum)
            .unwrap_or(LogIndex(0))
    }

    #[test]
    fn examples() {
        let idx = |v: &[u64]| v.iter().copied().map(LogIndex).collect::<Vec<_>>();
        assert_eq!(committed_index(&mut idx(&[5]), 1), LogIndex(5));
        assert_eq!(committed_index(&mut idx(&[5, 3, 1]), 2), LogIndex(3));
        assert_eq!(committed_index(&mut idx(&[5, 3, 1, 0]), 3), LogIndex(1));
    }

    proptest! {
        #[test]
        fn agrees_with_naive(matched in prop::collection::vec(0u64..20, 1..9)) {
            let matched: Vec<LogIndex> = matched.into_iter().map(LogIndex).collect();
            let quorum = matched.len() / 2 + 1;
            let expected = naive(&matched, quorum);
            prop_assert_eq!(committed_index(&mut matched.clone(), quorum), expected);
        }
    }
}
