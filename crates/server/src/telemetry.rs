//! Logging and tracing: `RUST_LOG` filters the log lines, `LOG_FORMAT` chooses pretty or JSON
//! lines, and with `OTEL_EXPORTER_OTLP_ENDPOINT` the spans (requests, database statements,
//! payment-gateway calls) are exported over OTLP/HTTP (ADR 0018). Without an endpoint nothing
//! is exported and no OpenTelemetry code runs; request log lines carry a trace id either way.

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::{
    Resource,
    trace::{SdkTracer, SdkTracerProvider},
};
use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter, Layer as _,
    filter::LevelFilter,
    fmt::{self, MakeWriter},
    prelude::*,
    registry::LookupSpan,
};

use crate::settings::{LogFormat, Settings};

/// The log levels when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,actix_server=warn";

/// The subscriber: log lines in `format` to `writer`, filtered by `RUST_LOG`; and, given a
/// `tracer`, every span at `info` or above to it, whatever `RUST_LOG` says (the database's
/// `sea_orm.*` spans included).
pub fn subscriber<W>(
    format: LogFormat,
    writer: W,
    tracer: Option<SdkTracer>,
) -> impl Subscriber + Send + Sync + for<'span> LookupSpan<'span>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let logs = match format {
        // One object per line: the event's fields at the top, the request span's (request id,
        // method, route, trace id) under `span`.
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Pretty => fmt::layer().compact().with_writer(writer).boxed(),
    };
    let traces = tracer.map(|tracer| {
        tracing_opentelemetry::layer().with_tracer(tracer).with_filter(LevelFilter::INFO)
    });
    tracing_subscriber::registry().with(logs.with_filter(filter)).with(traces)
}

/// Installs the logging subscriber (no span export), for the commands other than `serve`.
/// Calling it twice is harmless (the second call does nothing), so tests may call it freely.
pub fn init(format: LogFormat) {
    let _ = subscriber(format, std::io::stdout, None).try_init();
}

/// What `serve` keeps to flush the spans still buffered when it stops.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the subscriber of `serve`: the log lines, and the span exporter when
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    ///
    /// # Errors
    /// When the exporter cannot be built from the endpoint.
    pub fn init(settings: &Settings) -> anyhow::Result<Self> {
        let telemetry = &settings.telemetry;
        let provider = telemetry
            .otel_exporter_otlp_endpoint
            .as_deref()
            .map(|endpoint| tracer_provider(endpoint, &telemetry.otel_service_name))
            .transpose()?;
        let tracer = provider.as_ref().map(|provider| provider.tracer("orderly"));
        let _ = subscriber(settings.log.log_format, std::io::stdout, tracer).try_init();
        if let Some(endpoint) = &telemetry.otel_exporter_otlp_endpoint {
            tracing::info!(endpoint = %traces_url(endpoint), "exporting spans over OTLP/HTTP");
        }
        Ok(Self { provider })
    }

    /// Exports the spans still buffered (waiting a few seconds at most) and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(error = %error, "the span exporter did not shut down cleanly");
        }
    }
}

/// Where OTLP/HTTP takes spans: `<endpoint>/v1/traces`, as the OpenTelemetry specification
/// builds it from `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// A provider that batches spans and sends them, from a thread of its own, as protobuf over
/// HTTP. The sampler follows the standard `OTEL_TRACES_SAMPLER` variables (default: every
/// trace, or as the caller's `traceparent` decided).
fn tracer_provider(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    orderly_infrastructure::install_tls_provider();
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .build()
        .with_context(|| format!("building the OTLP exporter for {endpoint}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service_name.to_owned()).build())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_otlp_exporter_builds_with_the_workspace_s_http_client() {
        let provider = tracer_provider("http://127.0.0.1:4318", "orderly-test")
            .expect("the exporter builds (a TLS provider is installed)");
        provider.shutdown().ok();
    }

    #[test]
    fn spans_go_to_the_traces_path_of_the_endpoint() {
        assert_eq!(traces_url("http://collector:4318"), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318/"), "http://collector:4318/v1/traces");
    }
}
