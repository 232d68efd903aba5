//! Test-only misbehaviours, driven by the `test_*` settings of [`crate::config::NodeConfig`].

use super::*;

impl Provider {
    /// The test-only cheat switch: whether this job gets a wrong answer.
    pub(super) fn cheats_on(&self, job: &B256) -> bool {
        let ppm = self.config.test_cheat_ppm;
        if ppm == 0 {
            return false;
        }
        let h = blake3::hash(job.as_slice());
        let mut x = [0u8; 4];
        x.copy_from_slice(&h.as_bytes()[..4]);
        u32::from_le_bytes(x) % 1_000_000 < ppm
    }
}
