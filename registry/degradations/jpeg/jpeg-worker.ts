/** DiffJPEG's helper thread: codes the rows handed to it (diffjpeg.ts splits each image at a 16-row boundary). */
import { serveSync } from '../../../framework/host.js';
import { diffJpegImage } from './diffjpeg-host.js';

export interface JpegJob {
  img: Float32Array;
  h: number;
  w: number;
  quality: number;
  differentiable: boolean;
}

serveSync(
  (job: JpegJob): Float32Array => diffJpegImage(job.img, job.h, job.w, job.quality, job.differentiable),
  (out) => [out.buffer as ArrayBuffer],
);
