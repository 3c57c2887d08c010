/** Real (libjpeg) JPEG round trip through sharp, for contrast with DiffJPEG. */
import { loadSharp } from '../../datasets/common/load-sharp.js';
import { roundHalfEven } from '../../../framework/api.js';

/** Encode one HWC float [0,1] RGB image as JPEG at `quality` (integer) and decode it back. */
export async function sharpJpeg(img: Float32Array, h: number, w: number, quality: number, chroma: '4:2:0' | '4:4:4' = '4:2:0'): Promise<Float32Array> {
  const sharp = await loadSharp();
  const u8 = new Uint8Array(img.length);
  for (let i = 0; i < img.length; i++) u8[i] = Math.min(Math.max(roundHalfEven(img[i] * 255), 0), 255);
  const jpg = await sharp(u8, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality, chromaSubsampling: chroma }).toBuffer();
  const { data } = await sharp(jpg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const out = new Float32Array(img.length);
  for (let i = 0; i < out.length; i++) out[i] = data[i] / 255;
  return out;
}
