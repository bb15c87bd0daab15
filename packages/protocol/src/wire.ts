/**
 * The client protocol's wire types, generated from proto/shardchat/v1/client.proto and
 * common.proto (npm run proto). Both generated files export their own `protobufPackage`,
 * `DeepPartial` and the like, so common.proto's messages are named one by one: a message added
 * to common.proto is added here too.
 */
export * from "./gen/shardchat/v1/client.js";
export { ErrorCode, ErrorDetail, errorCodeFromJSON, errorCodeToJSON } from "./gen/shardchat/v1/common.js";
