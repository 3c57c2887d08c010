/** The noise stage's helper thread: adds Gaussian noise to the rows handed to it (gaussian-split.ts). */
import { Rng, serveSync } from '../../../framework/host.js';
import { addGaussianNoise } from './noise.js';

export interface GaussianJob {
  img: Float32Array;
  c: number;
  sigma: number;
  gray: boolean;
  clip: boolean;
  rounds: boolean;
  /** The stream's state where the main thread starts drawing ... */
  s: [number, number, number, number];
  /** ... and how many xoshiro outputs the main thread's share takes. */
  skip: number;
}

export interface GaussianReply {
  out: Float32Array;
  /** The state this share started from (the main thread checks that its share ended there). */
  start: [number, number, number, number];
  /** The state after this share's draws. */
  end: [number, number, number, number];
  spare: number | null;
}

serveSync(
  (job: GaussianJob): GaussianReply => {
    const rng = Rng.restore([], { s: job.s, spare: null }).advance(job.skip);
    const start = rng.getState().s;
    const per = job.gray ? job.c : 1;
    const draws = rng.fillNormal(new Float32Array(job.img.length / per)) as Float32Array;
    const out = addGaussianNoise(job.img, job.c, job.sigma, job.gray, job.clip, job.rounds, draws);
    const { s: end, spare } = rng.getState();
    return { out, start, end, spare };
  },
  (r) => [r.out.buffer as ArrayBuffer],
);
