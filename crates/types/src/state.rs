//! EC2's instance state machine. Codes and names are AWS's.
//!
//! ```text
//!            RunInstances
//!                 |
//!                 v
//!   +-------> pending(0) ---------> running(16) --- reboot (stays running)
//!   |                                |        \
//!   | StartInstances       Stop / guest        \ Terminate / guest poweroff
//!   |                      poweroff             \  (behaviour = terminate)
//!   |                          v                 v
//! stopped(80) <--------- stopping(64)     shutting-down(32) ---> terminated(48)
//!      \________________ Terminate ___________/^
//! ```
//!
//! Transitions are driven by what the VM really does (the agent's reports), never a timer.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    pub const ALL: [InstanceState; 6] = [
        InstanceState::Pending,
        InstanceState::Running,
        InstanceState::ShuttingDown,
        InstanceState::Terminated,
        InstanceState::Stopping,
        InstanceState::Stopped,
    ];

    pub fn code(self) -> u16 {
        match self {
            InstanceState::Pending => 0,
            InstanceState::Running => 16,
            InstanceState::ShuttingDown => 32,
            InstanceState::Terminated => 48,
            InstanceState::Stopping => 64,
            InstanceState::Stopped => 80,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.name() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_aws() {
        let pairs: Vec<(u16, &str)> = InstanceState::ALL.iter().map(|s| (s.code(), s.name())).collect();
        assert_eq!(
            pairs,
            vec![(0, "pending"), (16, "running"), (32, "shutting-down"), (48, "terminated"), (64, "stopping"), (80, "stopped")]
        );
        assert_eq!(InstanceState::from_name("shutting-down"), Some(InstanceState::ShuttingDown));
        assert_eq!(InstanceState::from_name("bogus"), None);
    }
}
