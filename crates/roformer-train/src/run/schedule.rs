//! The learning-rate schedule: linear warmup from 0 to the peak, then linear or cosine
//! decay to 0 at the last step (HF `get_linear_schedule_with_warmup` and
//! `get_cosine_schedule_with_warmup`).

use crate::config::Decay;

/// Learning rate as a function of the step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Warmup steps.
    pub warmup: usize,
    /// Total steps.
    pub total: usize,
    /// Decay after warmup.
    pub decay: Decay,
}

impl LrSchedule {
    /// The learning rate used for step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        match self.decay {
            Decay::Linear => self.peak * (1.0 - progress),
            Decay::Cosine => self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay_to_zero() {
        for decay in [Decay::Linear, Decay::Cosine] {
            let s = LrSchedule {
                peak: 1e-3,
                warmup: 10,
                total: 110,
                decay,
            };
            assert!((s.at(0) - 1e-4).abs() < 1e-12);
            assert!((s.at(9) - 1e-3).abs() < 1e-12);
            assert!((s.at(10) - 1e-3).abs() < 1e-12);
            // Halfway through decay: linear gives half the peak, cosine too (cos(π/2) = 0).
            assert!((s.at(60) - 5e-4).abs() < 1e-12, "{decay:?}: {}", s.at(60));
            assert!(s.at(110).abs() < 1e-12);
        }
        // A quarter through: linear 3/4, cosine (1 + cos(π/4))/2.
        let linear = LrSchedule {
            peak: 1.0,
            warmup: 0,
            total: 100,
            decay: Decay::Linear,
        };
        let cosine = LrSchedule {
            decay: Decay::Cosine,
            ..linear
        };
        assert!((linear.at(25) - 0.75).abs() < 1e-12);
        assert!((cosine.at(25) - (1.0 + (std::f64::consts::PI / 4.0).cos()) / 2.0).abs() < 1e-12);
    }
}
