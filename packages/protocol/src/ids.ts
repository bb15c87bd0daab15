/**
 * A user id (or group id) as the wire carries it: a canonical decimal uint64. The server checks
 * ids where they enter (src/ids/identifiers.ts); a string literal such as "1001" is one by its type.
 */
export type Uid = DecimalId;

/** A decimal uint64 id (user, group, message, file), as made by the snowflake generator. */
export type DecimalId = `${bigint}`;

/**
 * The device kinds a user may be logged in from at once, one session each (proto DeviceKind).
 * A route without a device is the first kind's.
 */
export const DEVICE_NAMES = ["desktop", "web", "mobile"] as const;
export type DeviceName = (typeof DEVICE_NAMES)[number];
