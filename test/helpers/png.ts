// Just enough PNG decoding for screenshots (8-bit RGB or RGBA, not interlaced): their luma plane,
// so the simulated avatar's frame counter can be read from what the browser actually rendered, and
// the red of its speaking marker (the bottom quarter of the picture).
import { inflateSync } from 'node:zlib';

export interface Luma {
  width: number;
  height: number;
  data: Uint8Array;
}

export function pngLuma(png: Buffer): Luma {
  return pngDecode(png).luma;
}

/** Mean red minus green over the bottom eighth of the picture: near 0 for grey, large for the speaking marker. */
export function pngBottomRedness(png: Buffer): number {
  const { rgb, luma } = pngDecode(png);
  const { width, height } = luma;
  let sum = 0;
  let n = 0;
  for (let y = Math.floor((height * 7) / 8); y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      sum += rgb[i]! - rgb[i + 1]!;
      n++;
    }
  }
  return n ? sum / n : 0;
}

function pngDecode(png: Buffer): { luma: Luma; rgb: Uint8Array } {
  if (png.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString('latin1', off + 4, off + 8);
    const body = png.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const [depth, colour, , , interlace] = [body[8], body[9], body[10], body[11], body[12]];
      channels = colour === 6 ? 4 : colour === 2 ? 3 : 0;
      if (depth !== 8 || !channels || interlace !== 0) throw new Error(`unsupported PNG (depth ${depth}, colour type ${colour}, interlace ${interlace})`);
    } else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const prev = new Uint8Array(stride);
  const cur = new Uint8Array(stride);
  const data = new Uint8Array(width * height);
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? cur[i - channels]! : 0;
      const b = prev[i]!;
      const c = i >= channels ? prev[i - channels]! : 0;
      let v = line[i]!;
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw new Error(`bad PNG filter ${filter}`);
      cur[i] = v & 0xff;
    }
    for (let x = 0; x < width; x++) {
      const i = x * channels;
      data[y * width + x] = Math.round(0.299 * cur[i]! + 0.587 * cur[i + 1]! + 0.114 * cur[i + 2]!);
      rgb.set(cur.subarray(i, i + 3), (y * width + x) * 3);
    }
    prev.set(cur);
  }
  return { luma: { width, height, data }, rgb };
}
