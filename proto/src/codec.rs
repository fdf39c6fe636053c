//! The gRPC codec of every relay service: prost's, with buffers sized for the relay's messages.
//!
//! tonic's default codec allocates 8 KiB for each direction of each stream up front, and keeps
//! it for the stream's life. A relay server holds one `Connect` stream per agent whose messages
//! are a few dozen bytes (heartbeats) to a few KiB (a certificate chain, once), so those
//! buffers were the largest share of a session's memory. Buffers still grow when a message needs
//! more; only the starting size changes.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Starting size of each stream's encode and decode buffer.
pub const BUFFER_SIZE: usize = 512;

/// How much an encoder buffers before it yields (tonic's default).
pub const YIELD_THRESHOLD: usize = 32 * 1024;

/// prost's encoding with [`BUFFER_SIZE`] buffers.
#[derive(Debug, Clone, Copy)]
pub struct RelayCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for RelayCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn buffers() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

impl<T, U> Codec for RelayCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(buffers())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(buffers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::codec::{Decoder, Encoder};

    #[test]
    fn both_directions_start_small() {
        // BufferSettings has private fields and no PartialEq: compare what it shows.
        let expected = "BufferSettings { buffer_size: 512, yield_threshold: 32768 }";
        let mut codec = RelayCodec::<crate::AgentMessage, crate::ServerMessage>::default();
        assert_eq!(format!("{:?}", codec.encoder().buffer_settings()), expected);
        assert_eq!(format!("{:?}", codec.decoder().buffer_settings()), expected);
    }
}
