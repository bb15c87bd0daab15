import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { crc32 } from "node:zlib";
import { pino } from "pino";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { ImagePreviews, thumbnailKey } from "../src/files/image-preview.js";
import { describeImage, type ImageLimits, inspectImage } from "../src/files/images.js";
import { LocalDiskFileStore } from "../src/files/local-disk.js";

/**
 * Image previews with real images made by sharp itself, decoded again to check the thumbnails,
 * and a real local-disk store for the round trip.
 */
const defaults = loadConfig({});
const limits: ImageLimits = {
  IMAGE_THUMB_MAX_PX: defaults.IMAGE_THUMB_MAX_PX,
  IMAGE_MAX_PIXELS: defaults.IMAGE_MAX_PIXELS,
  IMAGE_MAX_FRAMES: defaults.IMAGE_MAX_FRAMES,
  IMAGE_MAX_BYTES: defaults.IMAGE_MAX_BYTES,
  IMAGE_TIMEOUT_SECONDS: defaults.IMAGE_TIMEOUT_SECONDS,
};
const RED = { r: 255, g: 0, b: 0 };
const BLUE = { r: 0, g: 0, b: 255 };

function solid(width: number, height: number, background: string | typeof RED) {
  return sharp({ create: { width, height, channels: 3, background } });
}

/** Left half red, right half blue: which way the halves lie shows how the image was turned. */
function halves(width: number, height: number) {
  const left = {
    input: { create: { width: width / 2, height, channels: 3 as const, background: RED } },
    left: 0,
    top: 0,
  };
  return solid(width, height, BLUE).composite([left]);
}

/** An animation of one solid frame per colour, each width × height. */
function animation(width: number, height: number, colours: string[]) {
  return Promise.all(colours.map((c) => solid(width, height, c).png().toBuffer())).then((frames) =>
    sharp(frames, { join: { animated: true } }),
  );
}

/** A valid 1×1 PNG whose header claims width × height (its IHDR checksum fixed). */
async function pngClaiming(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(await solid(1, 1, "#fff").png().toBuffer());
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  return png;
}

/** The colour at (x, y) of an encoded image. */
async function pixel(image: Buffer, x: number, y: number) {
  const { data, info } = await sharp(image).raw().toBuffer({ resolveWithObject: true });
  const at = (y * info.width + x) * info.channels;
  return { r: data[at]!, g: data[at + 1]!, b: data[at + 2]! };
}

function close(a: { r: number; g: number; b: number }, b: { r: number; g: number; b: number }): boolean {
  return Math.abs(a.r - b.r) < 40 && Math.abs(a.g - b.g) < 40 && Math.abs(a.b - b.b) < 40;
}

describe("describeImage", () => {
  it("fits a still image's thumbnail inside IMAGE_THUMB_MAX_PX, as WebP without metadata", async () => {
    const png = await halves(2000, 1000).png().toBuffer();
    const image = await describeImage(png, limits);
    expect(image).toMatchObject({ width: 2000, height: 1000, thumbnail: { width: 320, height: 160 } });
    expect(image!.thumbnail!.contentType).toBe("image/webp");
    const thumb = await sharp(image!.thumbnail!.bytes).metadata();
    expect([thumb.format, thumb.width, thumb.height]).toEqual(["webp", 320, 160]);
    expect(close(await pixel(image!.thumbnail!.bytes, 10, 80), RED)).toBe(true);
    expect(close(await pixel(image!.thumbnail!.bytes, 310, 80), BLUE)).toBe(true);
  });

  it("never enlarges a small image", async () => {
    const image = await describeImage(await solid(100, 50, "#080").png().toBuffer(), limits);
    expect(image).toMatchObject({ width: 100, height: 50, thumbnail: { width: 100, height: 50 } });
  });

  it("applies EXIF orientation: a sideways-stored photo is described and thumbnailed upright", async () => {
    // Stored 400×300 landscape, tagged "turn 90° clockwise to show" (orientation 6), with EXIF
    // the thumbnail must not carry (the orientation and a camera's other tags).
    const jpeg = await halves(400, 300)
      .jpeg()
      .withMetadata({ orientation: 6 })
      .withExifMerge({ IFD0: { Make: "TestCam", Copyright: "someone" } })
      .toBuffer();
    const stored = await sharp(jpeg).metadata();
    expect([stored.width, stored.height, stored.orientation]).toEqual([400, 300, 6]);
    expect(stored.exif).toBeDefined();

    const image = await describeImage(jpeg, limits);
    expect(image).toMatchObject({ width: 300, height: 400, thumbnail: { width: 240, height: 320 } });
    const thumb = image!.thumbnail!.bytes;
    const meta = await sharp(thumb).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["webp", 240, 320]);
    expect(meta.exif).toBeUndefined();
    expect(meta.orientation).toBeUndefined();
    // Turned clockwise, the left (red) half is on top.
    expect(close(await pixel(thumb, 120, 20), RED)).toBe(true);
    expect(close(await pixel(thumb, 120, 300), BLUE)).toBe(true);
  });

  it.each(["gif", "webp"] as const)(
    "describes an animated %s by one frame, its thumbnail a still of the first",
    async (format) => {
      const animated = await (await animation(640, 480, ["#f00", "#0f0", "#00f"]))[format]().toBuffer();
      expect((await sharp(animated).metadata()).pages).toBe(3);

      const image = await describeImage(animated, limits);
      expect(image).toMatchObject({ width: 640, height: 480, thumbnail: { width: 320, height: 240 } });
      const thumb = await sharp(image!.thumbnail!.bytes).metadata();
      expect([thumb.format, thumb.width, thumb.height, thumb.pages ?? 1]).toEqual(["webp", 320, 240, 1]);
      expect(close(await pixel(image!.thumbnail!.bytes, 160, 120), RED)).toBe(true);
    },
  );

  it("gives an animation with more than IMAGE_MAX_FRAMES frames its dimensions only", async () => {
    const gif = await (await animation(64, 48, ["#f00", "#0f0", "#00f"])).gif().toBuffer();
    const inspected = await inspectImage(gif, { ...limits, IMAGE_MAX_FRAMES: 2 });
    expect(inspected.image).toEqual({ width: 64, height: 48 });
    expect(inspected.reason).toMatch(/3 frames.*IMAGE_MAX_FRAMES/);
    expect(await describeImage(gif, { ...limits, IMAGE_MAX_FRAMES: 3 })).toHaveProperty("thumbnail");
  });

  it("gives an image over IMAGE_MAX_PIXELS its dimensions only", async () => {
    const png = await solid(2000, 1000, "#888").png().toBuffer();
    const inspected = await inspectImage(png, { ...limits, IMAGE_MAX_PIXELS: 1_999_999 });
    expect(inspected.image).toEqual({ width: 2000, height: 1000 });
    expect(inspected.reason).toMatch(/IMAGE_MAX_PIXELS/);
    expect(await describeImage(png, { ...limits, IMAGE_MAX_PIXELS: 2_000_000 })).toHaveProperty("thumbnail");
  });

  it("reads a huge image's dimensions from its header and never decodes it", async () => {
    // 10^10 pixels claimed: decoding would need 30 GB; the header alone answers at once.
    const png = await pngClaiming(100_000, 100_000);
    const started = Date.now();
    expect(await describeImage(png, limits)).toEqual({ width: 100_000, height: 100_000 });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("describes AVIF", async () => {
    const avif = await solid(400, 200, "#08f").avif({ effort: 0 }).toBuffer();
    expect(await describeImage(avif, limits)).toMatchObject({ width: 400, height: 200, thumbnail: { width: 320 } });
  });

  it("answers null, never throwing, for what is not a decodable image", async () => {
    const jpeg = await halves(400, 300).jpeg().toBuffer();
    const png = await halves(400, 300).png().toBuffer();
    const gif = await solid(400, 300, "#0f0").gif().toBuffer();
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"><rect/></svg>');
    expect((await sharp(svg).metadata()).format).toBe("svg"); // sharp would read it: refused on purpose
    const cases: Record<string, Buffer> = {
      empty: Buffer.alloc(0),
      garbage: Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256)),
      "truncated JPEG": jpeg.subarray(0, jpeg.length >> 1),
      "truncated PNG": png.subarray(0, png.length >> 1),
      "truncated GIF": gif.subarray(0, gif.length >> 1),
      "PNG signature, then garbage": Buffer.concat([png.subarray(0, 8), Buffer.alloc(200, 0x41)]),
      "JPEG header only": jpeg.subarray(0, 400),
      svg,
    };
    for (const [name, bytes] of Object.entries(cases)) {
      const inspected = await inspectImage(bytes, limits);
      expect(inspected.image, name).toBeNull();
      expect(inspected.reason, name).toBeTruthy();
    }
    expect((await inspectImage(svg, limits)).reason).toMatch(/not a JPEG, PNG, GIF, WebP or AVIF/);
    expect((await inspectImage(jpeg, limits)).image).not.toBeNull(); // the whole one is fine
  });

  it("refuses more than IMAGE_MAX_BYTES, and stops reading a stream there", async () => {
    const png = await solid(300, 200, "#123").png().toBuffer();
    expect(await describeImage(png, { ...limits, IMAGE_MAX_BYTES: png.length - 1 })).toBeNull();
    expect(await describeImage(Readable.from([png]), { ...limits, IMAGE_MAX_BYTES: png.length })).toMatchObject({
      width: 300,
      height: 200,
    });

    // A stream that never ends: read up to the limit, then dropped.
    let produced = 0;
    const endless = new Readable({
      read() {
        produced += 65536;
        this.push(Buffer.alloc(65536, 0xff));
      },
    });
    const inspected = await inspectImage(endless, { ...limits, IMAGE_MAX_BYTES: 1 << 20 });
    expect(inspected).toEqual({ image: null, reason: expect.stringMatching(/IMAGE_MAX_BYTES/) });
    expect(endless.destroyed).toBe(true);
    expect(produced).toBeLessThan(4 << 20);
  });

  it("answers null for a stream that fails", async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error("disk gone"));
      },
    });
    expect(await inspectImage(failing, limits)).toEqual({ image: null, reason: expect.stringMatching(/disk gone/) });
  });
});

describe("ImagePreviews with a local-disk store", () => {
  let dir: string;
  let store: LocalDiskFileStore;
  const lines: { msg: string; fileId?: string; reason?: string; level: number }[] = [];
  const log = pino(
    { level: "info" },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString("utf8")));
        done();
      },
    }),
  );
  const warnings = (fileId: string) => lines.filter((l) => l.fileId === fileId && l.level === 40);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "shardchat-images-"));
    store = new LocalDiskFileStore(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function stored(id: string, bytes: Buffer): Promise<void> {
    await store.put(id, Readable.from([bytes]));
  }

  async function read(key: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of (await store.get(key))!) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  it("stores the thumbnail under <id>_thumb and answers where it is", async () => {
    const id = "7301234567890123456";
    await stored(id, await halves(2000, 1000).png().toBuffer());
    const preview = await new ImagePreviews(store, limits, log).make(id, "image/png");
    expect(thumbnailKey(id)).toBe(`${id}_thumb`);
    expect(preview).toEqual({
      width: 2000,
      height: 1000,
      thumbnail: { key: `${id}_thumb`, width: 320, height: 160, size: expect.any(Number), contentType: "image/webp" },
    });
    const thumb = await read(`${id}_thumb`);
    expect(thumb.length).toBe(preview!.thumbnail!.size);
    expect((await store.head(`${id}_thumb`))?.size).toBe(thumb.length);
    const meta = await sharp(thumb).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["webp", 320, 160]);
  });

  it("stores no thumbnail for an image over a limit, and says why", async () => {
    const id = "7301234567890123457";
    await stored(id, await pngClaiming(100_000, 100_000));
    expect(await new ImagePreviews(store, limits, log).make(id, "image/png")).toEqual({
      width: 100_000,
      height: 100_000,
    });
    expect(await store.head(thumbnailKey(id))).toBeNull();
    expect(lines.find((l) => l.fileId === id)?.reason).toMatch(/IMAGE_MAX_PIXELS/);
  });

  it("answers null, logging why at warn, for a bad image, a missing file or one over IMAGE_MAX_BYTES", async () => {
    const previews = new ImagePreviews(store, limits, log);
    await stored("7301234567890123458", Buffer.from("this is not a picture at all"));
    expect(await previews.make("7301234567890123458", "image/jpeg")).toBeNull();
    expect(warnings("7301234567890123458")[0]?.reason).toMatch(/not a JPEG/);

    expect(await previews.make("7301234567890123459", "image/png")).toBeNull();
    expect(warnings("7301234567890123459")[0]?.reason).toMatch(/no stored bytes/);

    const png = await solid(300, 200, "#123").png().toBuffer();
    await stored("7301234567890123460", png);
    const small = new ImagePreviews(store, { ...limits, IMAGE_MAX_BYTES: png.length - 1 }, log);
    expect(await small.make("7301234567890123460", "image/png")).toBeNull();
    expect(warnings("7301234567890123460")[0]?.reason).toMatch(/IMAGE_MAX_BYTES/);

    for (const id of ["7301234567890123458", "7301234567890123459", "7301234567890123460"]) {
      expect(await store.head(thumbnailKey(id))).toBeNull();
    }
  });

  it("does not look at files that are not images", async () => {
    const id = "7301234567890123461";
    await stored(id, await solid(300, 200, "#123").png().toBuffer());
    expect(await new ImagePreviews(store, limits, log).make(id, "application/pdf")).toBeNull();
    expect(await new ImagePreviews(store, limits, log).make(id, "video/mp4")).toBeNull();
    expect(await store.head(thumbnailKey(id))).toBeNull();
    expect(lines.filter((l) => l.fileId === id)).toEqual([]);
    // The same bytes as an image are described.
    expect(await new ImagePreviews(store, limits, log).make(id, "image/png")).toHaveProperty("thumbnail");
  });
});
