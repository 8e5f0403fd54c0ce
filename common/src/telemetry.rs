//! Logging and tracing set-up, the same for both binaries.
//!
//! Logs go to stderr, as text or JSON, filtered by `RUST_LOG` (default `info`).
//! Traces are exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set;
//! with it unset no exporter exists and tracing costs nothing beyond the log filter.
//! The standard `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`
//! are honoured (the SDK reads them).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Keeps the trace pipeline alive; call [`Telemetry::shutdown`] before exiting so the
/// last spans are flushed (a one-shot producer would otherwise lose its final batch).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the global subscriber. `service` names the process in traces unless
/// `OTEL_SERVICE_NAME` says otherwise.
pub fn init(service: &'static str, format: LogFormat) -> Telemetry {
    // tokio-postgres reports every server NOTICE at info: noise in a migration log.
    // async-nats logs what our own errors already say, and at debug level the server
    // URL with its password: it stays silent unless RUST_LOG names it.
    let filter = || {
        let directives = std::env::var("RUST_LOG")
            .ok()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| "info,tokio_postgres=warn".to_string());
        let directives = if directives.contains("async_nats") {
            directives
        } else {
            format!("{directives},async_nats=off")
        };
        EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info,async_nats=off"))
    };
    let fmt = match format {
        // Colours only for a person at a terminal: a file or a log collector gets
        // plain lines, not escape codes.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .with_filter(filter())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter())
            .boxed(),
    };

    let provider = otlp_provider(service);
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_filter(EnvFilter::new("info"))
    });
    // A second init in one process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    Telemetry { provider }
}

fn otlp_provider(service: &'static str) -> Option<SdkTracerProvider> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
    if endpoint.trim().is_empty() {
        return None;
    }
    // The builder reads the endpoint from the environment itself; setting it in code
    // would override the variable.
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
    {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("warning: OTLP export to {endpoint} disabled: {err}");
            return None;
        }
    };
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    Some(provider)
}

impl Telemetry {
    /// Flushes and stops the exporter. Blocking: call it from outside async code or
    /// through `spawn_blocking`.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(err) = provider.shutdown() {
                eprintln!("warning: flushing traces failed: {err}");
            }
        }
    }
}
