//! Generates the Rust code for `proto/relay.proto` with the protoc binary vendored by
//! `protoc-bin-vendored`, so a clean clone builds without a system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/relay.proto");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        // No `connect(endpoint)` constructor on the clients: the agent builds its channel with
        // its own TLS connector, and the name would clash with the `Connect` RPC.
        .build_transport(false)
        // Small codec buffers: see `relay_proto::codec`.
        .codec_path("crate::codec::RelayCodec")
        .compile_with_config(config, &["proto/relay.proto"], &["proto"])?;
    Ok(())
}
