// The client protocol of shardchat, shared by the server and the SDK: the frame codec, the one
// error-code table, and the ids and device names of the wire. The generated message types are
// at "@shardchat/protocol/wire".
export { AppError, codeOf, DetailedError, ErrorCode, errorName } from "./errors.js";
export {
  BadFieldValueError,
  decodeEnvelope,
  encodeEnvelope,
  encodeFrame,
  envelopeFromJson,
  envelopeToJson,
  FrameDecoder,
  LENGTH_BYTES,
} from "./frame.js";
export { DEVICE_NAMES, type DecimalId, type DeviceName, type Uid } from "./ids.js";
