/** What `tbcm export` is asked for, whatever the teacher kind (each kind refuses what it cannot do). */
export type ExportOptions = {
  /** Rows of every exported file's fixed batch. */
  batch: number;
  /** The generator's matrix products in int8 (dynamic quantization, standard ops): faster on CPUs with int8 dot products. */
  int8?: boolean;
  /** The VAE decoder's matrix products in int8 (default: as `int8`; FD and accuracy unchanged, RESULTS §17). */
  int8Decoder?: boolean;
  /** Student steps inside the generator (default 1); each step after the first takes a noise input. */
  steps?: number;
  /** Fresh-noise share when re-noising between steps (default: the run's `eval.eta`). */
  eta?: number;
};
