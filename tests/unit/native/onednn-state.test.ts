import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { oneDnnState } from '../../../framework/engine/native-binding.js';

/** oneDnnState: the environment variable decides when set; else TensorFlow's x86 rule on this CPU's flags. */
it('oneDnnState follows TF_ENABLE_ONEDNN_OPTS, else the CPU flags TensorFlow keys its default on', () => {
  assert.equal(oneDnnState({ TF_ENABLE_ONEDNN_OPTS: '1' }).on, true);
  assert.equal(oneDnnState({ TF_ENABLE_ONEDNN_OPTS: 'true' }).on, true);
  assert.equal(oneDnnState({ TF_ENABLE_ONEDNN_OPTS: '0' }).on, false);
  assert.match(oneDnnState({ TF_ENABLE_ONEDNN_OPTS: '0' }).why, /TF_ENABLE_ONEDNN_OPTS=0/);
  const dflt = oneDnnState({});
  if (process.arch !== 'x64') {
    assert.equal(dflt.on, null);
    return;
  }
  const flags = (readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').split(/\s+/);
  const expected = flags.some((f) => ['avx512_vnni', 'avx512_bf16', 'avx_vnni', 'amx_tile'].includes(f));
  assert.equal(dflt.on, expected, dflt.why);
});
