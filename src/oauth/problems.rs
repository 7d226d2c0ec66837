//! The problem names nodes answer when they do not hold a credential (the OAuth 1.0a problem reporting
//! extension's `oauth_problem` values, as ClearQuest Web sends them). Which ones count as stale is configurable;
//! these are the defaults.

/// The problems that mean "this node does not hold the credential" by default. `consumer_key_rejected` is
/// among them: a node that loaded a key while it was provisional keeps that stale copy after the approval
/// happened elsewhere, until it is refreshed.
pub const DEFAULT_STALE_PROBLEMS: [&str; 6] = [
    "invalid_expired_token",
    "consumer_key_unknown",
    "consumer_key_rejected",
    "token_rejected",
    "token_expired",
    "token_not_authorized",
];

/// The problems that mean "this node lacks the consumer key, or holds a stale copy" (a refresh fixes them).
pub const KEY_PROBLEMS: [&str; 2] = ["consumer_key_unknown", "consumer_key_rejected"];
