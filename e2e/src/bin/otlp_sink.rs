//! A minimal OTLP/gRPC trace receiver for the benchmark's tracing-overhead run:
//! `otlp_sink 127.0.0.1:4317` accepts exports until SIGTERM or SIGINT, then prints how
//! many spans it received.

use std::process::ExitCode;

use e2e::otlp::Collector;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(addr) = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
    else {
        eprintln!("usage: otlp_sink HOST:PORT");
        return ExitCode::from(2);
    };
    let collector = Collector::default();
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    let served = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_shutdown(addr, stop)
        .await;
    if let Err(err) = served {
        eprintln!("otlp_sink: {err}");
        return ExitCode::FAILURE;
    }
    let spans = collector.spans.lock().map(|s| s.len()).unwrap_or(0);
    println!("spans received: {spans}");
    ExitCode::SUCCESS
}
