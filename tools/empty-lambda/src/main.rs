//! empty-lambda: a `lambda_http` function that answers every request with `200 ok` and does
//! nothing else. `make bench` (tools/lambda-bench) runs it beside the real functions, built with
//! the same release profile, so each function's init time and memory read as a ratio to it.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|_req: Request| async {
        Ok::<_, Error>(Response::new(Body::from("ok")))
    }))
    .await
}
