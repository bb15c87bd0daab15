import type { Readable } from "node:stream";
import sharp from "sharp";
import type { Config } from "../config/settings.js";

/** The limits that bound what describing one image may cost. */
export type ImageLimits = Pick<
  Config,
  "IMAGE_THUMB_MAX_PX" | "IMAGE_MAX_PIXELS" | "IMAGE_MAX_FRAMES" | "IMAGE_MAX_BYTES" | "IMAGE_TIMEOUT_SECONDS"
>;

export const THUMBNAIL_CONTENT_TYPE = "image/webp";

export interface Thumbnail {
  bytes: Buffer;
  width: number;
  height: number;
  contentType: typeof THUMBNAIL_CONTENT_TYPE;
}

/**
 * An image as a client shows it: width and height upright (EXIF orientation applied; one frame
 * of an animation), and a still thumbnail unless the image is too large or has too many frames.
 */
export interface ImageDescription {
  width: number;
  height: number;
  thumbnail?: Thumbnail;
}

/** The description, or null and why; `reason` also says why a described image has no thumbnail. */
export type ImageInspection = { image: ImageDescription; reason?: string } | { image: null; reason: string };

/**
 * The formats described, by the name sharp's metadata gives them. Anything else is refused
 * before libvips parses it. SVG in particular: it is a document, not pixels; rasterizing it
 * runs librsvg over untrusted XML whose cost (filters, nesting) the pixel limit does not
 * bound, and its size is whatever its attributes claim. TIFF, PDF and the rest are not shown
 * inline by browsers, so a thumbnail would be their only use of a large parser.
 */
type Format = "jpeg" | "png" | "gif" | "webp" | "heif";

/** `describeImage` with the reason kept, for the caller that logs it. Never throws. */
export async function inspectImage(input: Buffer | Readable, limits: ImageLimits): Promise<ImageInspection> {
  let bytes: Buffer | null;
  try {
    bytes = Buffer.isBuffer(input) ? input : await readAtMost(input, limits.IMAGE_MAX_BYTES);
  } catch (err) {
    return { image: null, reason: `unreadable: ${(err as Error).message}` };
  }
  if (bytes === null || bytes.length > limits.IMAGE_MAX_BYTES) {
    return { image: null, reason: `larger than IMAGE_MAX_BYTES (${limits.IMAGE_MAX_BYTES})` };
  }
  const format = sniffFormat(bytes);
  if (format === null) return { image: null, reason: "not a JPEG, PNG, GIF, WebP or AVIF image" };

  // The header only: no pixel is decoded, so the size may be anything (the pixel limit would
  // refuse to even read it, and an oversized image still has dimensions to report).
  let width: number;
  let height: number;
  let frames: number;
  try {
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    if (meta.format !== format) return { image: null, reason: `${format} signature but ${meta.format} content` };
    // Without `pages`, sharp reports one frame's height; autoOrient is the upright size.
    ({ width, height } = meta.autoOrient);
    frames = meta.pages ?? 1;
  } catch (err) {
    return { image: null, reason: `unreadable ${format} header: ${(err as Error).message}` };
  }
  if (!(width > 0 && height > 0)) return { image: null, reason: `${format} header without dimensions` };

  if (frames > limits.IMAGE_MAX_FRAMES) {
    return { image: { width, height }, reason: `${frames} frames, more than IMAGE_MAX_FRAMES` };
  }
  if (width * height > limits.IMAGE_MAX_PIXELS) {
    return { image: { width, height }, reason: `${width}×${height} pixels, more than IMAGE_MAX_PIXELS` };
  }

  try {
    const box = limits.IMAGE_THUMB_MAX_PX;
    const { data, info } = await sharp(bytes, {
      // libvips checks the header again before decoding: the bound holds even if a file's
      // metadata and its decoder disagreed.
      limitInputPixels: limits.IMAGE_MAX_PIXELS,
      // Warnings (stray bytes after a JPEG's end, say) still give a fine thumbnail; a truncated
      // or corrupt image does not.
      failOn: "error",
      pages: 1, // an animation's first frame
    })
      .timeout({ seconds: limits.IMAGE_TIMEOUT_SECONDS })
      .autoOrient()
      .resize({ width: box, height: box, fit: "inside", withoutEnlargement: true })
      // No keepMetadata/withMetadata: EXIF (GPS position, camera) and ICC are dropped.
      .webp()
      .toBuffer({ resolveWithObject: true });
    return {
      image: {
        width,
        height,
        thumbnail: { bytes: data, width: info.width, height: info.height, contentType: THUMBNAIL_CONTENT_TYPE },
      },
    };
  } catch (err) {
    return { image: null, reason: `undecodable ${format}: ${(err as Error).message}` };
  }
}

/**
 * Dimensions and a WebP thumbnail of a still or animated image (its first frame), or null for
 * anything that is not a decodable JPEG, PNG, GIF, WebP or AVIF of at most IMAGE_MAX_BYTES.
 * Never throws. Video is not an image here: sharp cannot decode it (a poster frame needs ffmpeg).
 */
export async function describeImage(input: Buffer | Readable, limits: ImageLimits): Promise<ImageDescription | null> {
  return (await inspectImage(input, limits)).image;
}

/** The stream's bytes, or null (and the stream destroyed, the rest unread) once they pass maxBytes. */
async function readAtMost(stream: Readable, maxBytes: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    size += buf.length;
    if (size > maxBytes) {
      stream.destroy();
      return null;
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, size);
}

/** The format the file's first bytes announce, among those described. */
function sniffFormat(b: Buffer): Format | null {
  const ascii = (from: number, to: number) => b.toString("latin1", from, to);
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  if (b.length >= 8 && b.subarray(0, 8).equals(PNG_SIGNATURE)) return "png";
  if (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a") return "gif";
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
  if (isAvif(b)) return "heif";
  return null;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * An ISO-BMFF `ftyp` box naming an AVIF brand (major or compatible). HEIC shares the container
 * but sharp's build has no HEVC decoder, so only AVIF is let through to the HEIF loader.
 */
function isAvif(b: Buffer): boolean {
  if (b.length < 16 || b.toString("latin1", 4, 8) !== "ftyp") return false;
  const boxEnd = Math.min(b.readUInt32BE(0), b.length);
  const brands = [b.toString("latin1", 8, 12)];
  for (let at = 16; at + 4 <= boxEnd; at += 4) brands.push(b.toString("latin1", at, at + 4));
  return brands.includes("avif") || brands.includes("avis");
}
