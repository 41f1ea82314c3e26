//! A tiny seeded generator for election timeouts. It is the machine's only
//! source of randomness, injected through [`Config::seed`](crate::Config::seed),
//! so that every run can be replayed from its seed.

/// SplitMix64: small, fast and good enough to spread election timeouts.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value drawn uniformly from `[low, low + span)`; `span` must be positive.
    pub(crate) fn in_span(&mut self, low: u64, span: u64) -> u64 {
        debug_assert!(span > 0);
        // Multiply-shift maps 64 random bits onto the span without the bias of `%`.
        let scaled = ((self.next_u64() as u128 * span as u128) >> 64) as u64;
        low + scaled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn stays_in_span_and_covers_it() {
        let mut rng = Rng::new(1);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = rng.in_span(150, 10);
            assert!((150..160).contains(&v));
            seen[(v - 150) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
