//! A gRPC client codec that sends a request as the protobuf it already is: the
//! exporter's queue and the forwarder hold encoded Export requests, and tonic's prost
//! codec would have them decoded and encoded again. Responses are decoded by prost.

use bytes::{BufMut, Bytes};
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};

/// Sends [`Bytes`] as they are; decodes the response as `R`.
pub struct AsEncoded<R>(PhantomData<fn() -> R>);

impl<R> Default for AsEncoded<R> {
    fn default() -> Self {
        AsEncoded(PhantomData)
    }
}

impl<R: prost::Message + Default + Send + 'static> Codec for AsEncoded<R> {
    type Encode = Bytes;
    type Decode = R;
    type Encoder = Passthrough;
    type Decoder = tonic_prost::ProstDecoder<R>;

    fn encoder(&mut self) -> Self::Encoder {
        Passthrough
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(BufferSettings::default())
    }
}

/// Writes the encoded request into tonic's buffer.
pub struct Passthrough;

impl Encoder for Passthrough {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put(item);
        Ok(())
    }
}
