/**
 * The library API. `distill` runs a distillation into a directory; `sampleImages` draws images
 * from a run's student (or the shipped teacher), `loadStudent` + `sample` latents from a student
 * of the analytic teacher; `exportStudent` writes ONNX files; `checkBundle` checks a teacher bundle
 * before a run. The method's pieces are exported
 * for use on other teachers.
 */
export { distill, evaluateRun } from "./run/distill.ts";
export { openRun, loadStudent, type OpenedRun } from "./run/open.ts";
export { sampleImages } from "./run/sample.ts";
export { exportStudent } from "./run/export.ts";
export { checkBundle, type BundleCheck } from "./bundle/check.ts";
export type { SampleImagesOptions, SampledImages } from "./eval/images.ts";
export { sample, type SampleOptions, type GmmStudent as Student } from "./gmm/sample.ts";
export { pretrainTeacherCopy } from "./gmm/pretrain.ts";
export { parseConfig, loadConfig, DEVICES, type TbcmConfig, type Device } from "./config/schema.ts";
export type { DistillProblem } from "./train/problem.ts";
export { routeAngles, jitterRoute, drawRoute, logitNormalRoute, ROUTE_SAMPLINGS, type RouteSampling } from "./method/route.ts";
export { sampleTrajectory, trainingPairs, blackFilter } from "./method/trajectory.ts";
export { consistencyTangent, normalizeTangent, scmLoss, tangentRatio, adaptiveWeight, jvpTangents } from "./method/loss.ts";
export { flowToTrigVelocity } from "./method/flowToTrig.ts";
export { cfgVelocity, teacherCfgVelocity } from "./method/guidance.ts";
export { sampleStudent, studentTimesteps, scmStep } from "./method/sampler.ts";
