//! Bare actix-web serving a fixed Patient body at `/Patient/{id}`: the
//! ceiling `bench/auth.sh` compares Hearth's reads with, on the same
//! machine in the same run. `cargo run --release -p hearth-http --example
//! bare -- 127.0.0.1:8185 bench/patient.json`.

use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8185".into());
    let body = std::fs::read(args.next().unwrap_or_else(|| "bench/patient.json".into()))?;
    let body = web::Bytes::from(body);
    HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/Patient/{id}",
            web::get().to(move || {
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type("application/fhir+json")
                        .body(body)
                }
            }),
        )
    })
    .workers(2)
    .bind(listen)?
    .run()
    .await
}
