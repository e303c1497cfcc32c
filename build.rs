//! Compiles the project's own protos (the RolloutService query API) with protox,
//! a pure-Rust protobuf compiler, so that no system `protoc` is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["proto/rollout/v1/rollout.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
