//! An OTLP/gRPC trace receiver: the real protocol (the `opentelemetry-proto` collector
//! service served by tonic), keeping what it receives. The telemetry test reads the
//! spans; the benchmark's `otlp_sink` binary counts them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

/// A span as received, with the service that sent it.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub name: String,
    pub trace_id: Vec<u8>,
    pub attributes: HashMap<String, String>,
}

#[derive(Clone, Default)]
pub struct Collector {
    pub spans: Arc<Mutex<Vec<Received>>>,
    /// Every request received, as its `Debug` text: every attribute, event and
    /// resource, for tests that search all of it (for a secret, say).
    pub everything: Arc<Mutex<String>>,
}

impl Collector {
    /// Serves a new collector on a free loopback port; returns it, its endpoint
    /// (`http://127.0.0.1:<port>`) and the server task, to abort when done.
    ///
    /// # Errors
    /// When no port is free.
    pub fn serve() -> anyhow::Result<(Self, String, tokio::task::JoinHandle<()>)> {
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
        let collector = Collector::default();
        let port = crate::private::free_port()?;
        let server = tokio::spawn({
            let service = TraceServiceServer::new(collector.clone());
            async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve(([127, 0, 0, 1], port).into())
                    .await;
            }
        });
        Ok((collector, format!("http://127.0.0.1:{port}"), server))
    }

    /// What [`Collector::everything`] holds so far.
    pub fn everything(&self) -> String {
        self.everything
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        let request = request.into_inner();
        if let Ok(mut everything) = self.everything.lock() {
            everything.push_str(&format!("{request:?}\n"));
        }
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push(Received {
                        service: service.clone(),
                        name: span.name.clone(),
                        trace_id: span.trace_id.clone(),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                            .collect(),
                    });
                }
            }
        }
        if let Ok(mut spans) = self.spans.lock() {
            spans.extend(received);
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}
