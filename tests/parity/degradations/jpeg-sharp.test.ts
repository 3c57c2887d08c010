/**
 * The real-JPEG op (libjpeg through sharp) against OpenCV imencode/imdecode of the same pixels
 * recorded in the DiffJPEG reference fixtures (cv2 output is there for contrast with DiffJPEG).
 * Both are libjpeg with standard tables, 4:2:0 and the islow DCT: the outputs must agree to the
 * 8-bit value. Also checks that DiffJPEG is NOT libjpeg (tests/fixtures/reference/README.md, point 7).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadReference, f32, nchwToNhwc } from './reference.js';
import { sharpJpeg } from '../../../registry/degradations/jpeg/sharp-jpeg.js';
import { diffJpegImage } from '../../../registry/degradations/jpeg/diffjpeg.js';

const jpegs = loadReference('diffjpeg.json');

describe('jpeg-sharp vs OpenCV JPEG (fixtures)', () => {
  for (const c of jpegs.cases) {
    for (const q of c.params.qualities as number[]) {
      it(`${c.name} q${q}`, async () => {
        const [h, w] = c.input_uint8.shape as number[];
        const img = Float32Array.from(c.input_uint8.data as number[], (v) => v / 255);
        const out = await sharpJpeg(img, h, w, q, '4:2:0');
        const exp = c.expected[`q${q}_cv2_imencode_imdecode`].data as number[];
        let maxDiff = 0;
        for (let i = 0; i < out.length; i++) maxDiff = Math.max(maxDiff, Math.abs(Math.round(out[i] * 255) - exp[i]));
        assert.equal(maxDiff, 0, `max 8-bit difference ${maxDiff}`);
        // DiffJPEG of the same pixels differs visibly from libjpeg
        const [, ch, hh, ww] = c.input.shape as number[];
        const dj = diffJpegImage(nchwToNhwc(f32(c.input), 1, ch, hh, ww), hh, ww, q);
        let djMax = 0;
        for (let i = 0; i < dj.length; i++) djMax = Math.max(djMax, Math.abs(dj[i] * 255 - exp[i]));
        assert.ok(djMax > 5, `DiffJPEG vs libjpeg max diff ${djMax}`);
      });
    }
  }
});
