//! How errors reach the log: with their whole cause chain on one line, never a `Debug` dump.

/// `error: cause: cause` for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The target of access-log lines; a filter can raise or silence it alone (`tokenroute::access=off`).
pub const ACCESS_TARGET: &str = "tokenroute::access";

/// How the process logs: the format, the filter used when `RUST_LOG` is unset, and whether the access log's
/// target is let through whatever the filter says of the rest.
#[derive(Debug, Clone)]
pub struct LogSetup<'a> {
    /// One JSON object per line instead of text.
    pub json: bool,
    /// A tracing filter (`info`, `tokenroute=debug`); `RUST_LOG` wins when set.
    pub level: &'a str,
    /// Let access-log lines through at `info` unless the filter names their target itself.
    pub access: bool,
}

/// Installs the process-wide subscriber, writing to stderr. Call it once, before the runtime starts.
pub fn init(setup: &LogSetup<'_>) {
    let mut directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| setup.level.to_owned());
    if setup.access && !directives.contains(ACCESS_TARGET) {
        directives.push(',');
        directives.push_str(ACCESS_TARGET);
        directives.push_str("=info");
    }
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(&directives)
        .unwrap_or_else(|e| {
            eprintln!("tokenroute: ignoring the log filter {directives:?}: {e}; logging at info");
            tracing_subscriber::EnvFilter::new("info")
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if setup.json {
        builder.event_format(JsonLines).init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// One JSON object per event: `time` (RFC 3339, UTC), `level`, `target`, `message` and every field at the top
/// level, each value typed (numbers stay numbers). Written here rather than pulled in as a dependency: it is
/// forty lines on the `serde_json` the crate already has.
#[derive(Debug, Clone, Copy)]
struct JsonLines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut object = serde_json::Map::new();
        object.insert("time".into(), rfc3339(std::time::SystemTime::now()).into());
        object.insert("level".into(), meta.level().as_str().into());
        object.insert("target".into(), meta.target().into());
        event.record(&mut JsonFields(&mut object));
        writeln!(writer, "{}", serde_json::Value::Object(object))
    }
}

/// Collects an event's fields into a JSON object.
struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.0
            .insert(field.name().into(), error_chain(value).into());
    }
    /// `%value` and `?value` fields, and the message: their text.
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

/// `2024-05-01T12:34:56.789Z`.
fn rfc3339(time: std::time::SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_dates_across_leap_years() {
        let at = |secs: u64, millis: u64| {
            rfc3339(
                std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(secs)
                    + std::time::Duration::from_millis(millis),
            )
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000Z");
    }
}
