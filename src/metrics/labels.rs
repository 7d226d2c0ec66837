//! The closed label vocabularies of the metrics: every value a `reason`, `trigger` or `outcome` label can take.
//! The domains that decide these things (routing, refresh, repair) use these enums directly, so a new value
//! cannot be observed without a slot to count it in.

/// Why a request went where it went (a metric label; never a credential).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteReason {
    /// A known token: its issuer.
    Token,
    /// A known consumer key or client id: a healthy owner.
    Key,
    /// A known session cookie: its node.
    Cookie,
    /// Nothing known: the balancing policy over healthy nodes.
    Policy,
    /// A known credential whose owners are all down: any healthy node, so the client gets the backend's answer.
    OwnerDown,
}

impl RouteReason {
    /// Every reason, for metrics.
    pub const ALL: [RouteReason; 5] = [
        RouteReason::Token,
        RouteReason::Key,
        RouteReason::Cookie,
        RouteReason::Policy,
        RouteReason::OwnerDown,
    ];

    /// A stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteReason::Token => "token",
            RouteReason::Key => "key",
            RouteReason::Cookie => "cookie",
            RouteReason::Policy => "policy",
            RouteReason::OwnerDown => "owner_down",
        }
    }
}

/// What started a node refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshTrigger {
    /// A consumer key or client id was registered or approved: fan-out to the other nodes.
    KeyEvent,
    /// A node became healthy again.
    NodeUp,
    /// A node gave a stale-credential answer.
    StaleAnswer,
    /// An administrator asked (`POST /nodes/{name}/refresh`).
    Admin,
    /// The periodic refresh timer.
    Timer,
    /// Routing chose a node that is not an owner of the request's key.
    Route,
}

impl RefreshTrigger {
    /// Every trigger, in label order.
    pub const ALL: [RefreshTrigger; 6] = [
        RefreshTrigger::KeyEvent,
        RefreshTrigger::NodeUp,
        RefreshTrigger::StaleAnswer,
        RefreshTrigger::Admin,
        RefreshTrigger::Timer,
        RefreshTrigger::Route,
    ];

    /// The `trigger` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshTrigger::KeyEvent => "key_event",
            RefreshTrigger::NodeUp => "node_up",
            RefreshTrigger::StaleAnswer => "stale_answer",
            RefreshTrigger::Admin => "admin",
            RefreshTrigger::Timer => "timer",
            RefreshTrigger::Route => "route",
        }
    }
}

/// How a replay after a stale-credential answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayOutcome {
    /// Replayed on another node, which answered without a stale-credential error.
    Repaired,
    /// Replayed, and the other node failed too (or no node could take the replay).
    Failed,
    /// Not replayed: the body was not buffered, or the request must not be sent twice.
    NotReplayable,
}

impl ReplayOutcome {
    /// Every outcome, in label order.
    pub const ALL: [ReplayOutcome; 3] = [
        ReplayOutcome::Repaired,
        ReplayOutcome::Failed,
        ReplayOutcome::NotReplayable,
    ];

    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayOutcome::Repaired => "repaired",
            ReplayOutcome::Failed => "failed",
            ReplayOutcome::NotReplayable => "not_replayable",
        }
    }
}
