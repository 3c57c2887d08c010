/**
 * Import first (before anything loads TensorFlow): pins TensorFlow's oneDNN custom ops off for
 * this test process and the processes it starts, unless the environment already chose.
 *
 * Why: TensorFlow turns oneDNN on by default on CPUs with AVX-512 VNNI/BF16 or AMX (it is off
 * on older ones), and with it on, graph execution fuses ops (convolution + bias + add, ...)
 * that eager execution runs one by one. A compiled step then differs from the eager one by
 * float rounding (1e-5 relative after one step, growing over 20 training steps), so the
 * compiled = eager tests, whose job is to catch a wrong recording, would depend on the CPU.
 * With oneDNN off both paths run the same kernels on every machine. oneDNN also prints a
 * start-up notice before TensorFlow's log level applies (the tf-log test's subject is the
 * level). The product keeps TensorFlow's default: on such CPUs oneDNN halves the UNet step's
 * time and memory (README, memory section).
 */
process.env.TF_ENABLE_ONEDNN_OPTS ??= '0';
