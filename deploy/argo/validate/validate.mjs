// Checks deploy/argo/reconstruct-workflow.yaml offline.
//
//     node validate.mjs WORKFLOW.yaml CHART_VALUES.yaml
//
// First the template is validated against the Argo Workflows schema of
// @kubernetes-models/argo-workflows (generated from Argo's OpenAPI definitions). That schema
// checks field types, enums and required fields but accepts unknown fields. The checks
// after it therefore look up every field the pipeline relies on by name, and they check
// what no schema can express:
//
// - the DAG runs `kai recon <stage>` for screen, sfm, dense, mesh, lod and export, in
//   that order, each task after the success of the one before;
// - each stage reads the file or folder its predecessor wrote, with the file names of
//   the documented stage interface;
// - every path lies on a mount of its container, the photos mount is read-only, and
//   every referenced workflow parameter is declared;
// - the stage templates share image, environment, securityContext and retries, and the
//   pod and container hardening equals the Helm chart's values.
//
// Exit status: 0 when everything passes, 1 when a check fails (each failure is printed),
// 2 for wrong usage or an unreadable file.

import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { WorkflowTemplate } from "@kubernetes-models/argo-workflows/argoproj.io/v1alpha1/WorkflowTemplate";
import { parseAllDocuments } from "yaml";

// The `kai recon` stages in pipeline order.
const STAGES = ["screen", "sfm", "dense", "mesh", "lod", "export"];

// The files each stage reads and writes, from the documented command line:
//   screen PHOTOS -o WORK/screening.json      sfm PHOTOS -o WORK/sparse
//   dense WORK/sparse --images PHOTOS -o WORK/dense.ply
//   mesh WORK/dense.ply -o WORK/mesh.ply      lod WORK/mesh.ply -o WORK/lod
//   export WORK/lod -o OUT/model.glb
// `input` is "photos" or the stage whose output is read, and `output` the name of the
// file or folder written.
const INTERFACE = {
  screen: { input: "photos", output: "screening.json" },
  // --screening makes sfm use only the photos that screen accepted.
  sfm: { input: "photos", output: "sparse", screening: "screen" },
  dense: { input: "sfm", images: true, output: "dense.ply" },
  mesh: { input: "dense", output: "mesh.ply" },
  lod: { input: "mesh", output: "lod" },
  export: { input: "lod", output: "model.glb", compression: true },
};

// Fields that must be the same in every stage template.
const SHARED_FIELDS = [
  ["retryStrategy"],
  ["container", "image"],
  ["container", "imagePullPolicy"],
  ["container", "envFrom"],
  ["container", "env"],
  ["container", "securityContext"],
];

// The mount point of the photos folder, read-only in the stages that read photos.
const PHOTOS_MOUNT = "/photos";
const TIER_ARGUMENT = "{{workflow.parameters.tier}}";

const failures = [];
function check(condition, message) {
  if (!condition) {
    failures.push(message);
  }
  return condition;
}

function field(object, path) {
  return path.reduce((value, key) => (value == null ? undefined : value[key]), object);
}

function readYaml(path) {
  let text;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    console.error(`cannot read ${path}: ${err.message}`);
    process.exit(2);
  }
  // uniqueKeys rejects a key given twice, which a later one would silently override.
  const documents = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  if (!Array.isArray(documents) || documents.length !== 1) {
    console.error(`${path}: expected exactly one YAML document`);
    process.exit(1);
  }
  const [document] = documents;
  if (document.errors.length > 0 || document.warnings.length > 0) {
    for (const problem of [...document.errors, ...document.warnings]) {
      console.error(`${path}: ${problem.message}`);
    }
    process.exit(1);
  }
  return document.toJS({ maxAliasCount: 100 });
}

// Parses a Kubernetes quantity such as 512Mi, 8Gi or 1.5 into a number of units.
function quantity(value) {
  const match = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$/.exec(String(value));
  if (!match) {
    return NaN;
  }
  const scale = {
    Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40,
    k: 1e3, M: 1e6, G: 1e9, T: 1e12, m: 1e-3,
  };
  return Number(match[1]) * (match[2] ? scale[match[2]] : 1);
}

// Splits a stage's args into positional arguments and options (each option takes a
// value, as every option of `kai recon` used here does).
function parseArgs(stage, args) {
  const positional = [];
  const options = {};
  for (let i = 0; i < args.length; i += 1) {
    const arg = String(args[i]);
    if (arg.startsWith("-")) {
      check(i + 1 < args.length, `${stage}: option ${arg} has no value`);
      check(!(arg in options), `${stage}: option ${arg} is given twice`);
      options[arg] = String(args[i + 1]);
      i += 1;
    } else {
      positional.push(arg);
    }
  }
  return { positional, options };
}

function validateSchema(manifest) {
  try {
    new WorkflowTemplate(manifest).validate();
    console.log("valid against the Argo Workflows schema (WorkflowTemplate, argoproj.io/v1alpha1)");
    return true;
  } catch (err) {
    failures.push(`schema: ${err.message}`);
    return false;
  }
}

// Returns the stage templates in the order the entrypoint's DAG runs them. Each task
// must depend on the success of exactly the task before it.
function checkTasks(spec, templates) {
  const entry = templates.get(spec.entrypoint);
  const isDag = Array.isArray(entry?.dag?.tasks);
  if (!check(isDag, `the entrypoint ${spec.entrypoint} is not a DAG template`)) {
    return [];
  }
  const tasks = entry.dag.tasks;
  const order = tasks.map((task) => task.template);
  check(
    isDeepStrictEqual(order, STAGES),
    `the tasks run ${order.join(", ")}; expected ${STAGES.join(", ")}`,
  );
  for (const [index, task] of tasks.entries()) {
    check(task.name === task.template, `task ${task.name} runs template ${task.template}; name them alike`);
    const expected = index === 0 ? undefined : `${tasks[index - 1].name}.Succeeded`;
    check(
      task.depends === expected,
      `task ${task.name} depends on ${task.depends ?? "nothing"}; expected ${expected ?? "nothing"}`,
    );
    check(task.dependencies === undefined, `task ${task.name} sets dependencies besides depends`);
    check(task.when === undefined, `task ${task.name} is conditional (when: ${task.when})`);
    check(
      task.continueOn === undefined,
      `task ${task.name} sets continueOn, so a failed stage would not stop the run`,
    );
  }
  return order.filter((name) => templates.has(name)).map((name) => [name, templates.get(name)]);
}

function mountFor(container, path) {
  return (container.volumeMounts ?? []).find(
    (mount) => path === mount.mountPath || path.startsWith(`${mount.mountPath}/`),
  );
}

function checkStage(stage, template, outputs, photos) {
  const container = template.container;
  if (!check(container !== undefined, `${stage}: not a container template`)) {
    return;
  }
  const command = container.command ?? [];
  check(
    isDeepStrictEqual(command, ["kai", "recon", stage]),
    `${stage}: runs ${command.join(" ")}; expected kai recon ${stage}`,
  );

  const spec = INTERFACE[stage];
  const { positional, options } = parseArgs(stage, container.args ?? []);
  const known = ["-o", "--tier"];
  if (spec.images) {
    known.push("--images");
  }
  if (spec.compression) {
    known.push("--compression");
  }
  if (spec.screening) {
    known.push("--screening");
  }
  for (const option of Object.keys(options)) {
    check(known.includes(option), `${stage}: unknown option ${option} for kai recon ${stage}`);
  }
  check(positional.length === 1, `${stage}: expected one input path, got ${positional.join(" ")}`);
  check(
    options["--tier"] === TIER_ARGUMENT,
    `${stage}: --tier is ${options["--tier"]}; expected ${TIER_ARGUMENT}, so all stages use one parameter set`,
  );
  if (spec.compression) {
    check(
      options["--compression"] === "{{workflow.parameters.compression}}",
      `${stage}: --compression is ${options["--compression"]}; expected the compression parameter`,
    );
  }

  const input = positional[0];
  const expectedInput = spec.input === "photos" ? photos : outputs.get(spec.input);
  const from = spec.input === "photos" ? "the photos folder" : `the output of ${spec.input}`;
  check(input === expectedInput, `${stage}: reads ${input}; expected ${from}, ${expectedInput}`);
  if (spec.screening) {
    const report = outputs.get(spec.screening);
    check(
      options["--screening"] === report,
      `${stage}: --screening is ${options["--screening"]}; expected the output of ${spec.screening}, ${report}`,
    );
  }
  if (spec.images) {
    check(
      options["--images"] === photos,
      `${stage}: --images is ${options["--images"]}; expected the photos folder, ${photos}`,
    );
  }
  const output = options["-o"];
  if (check(output !== undefined, `${stage}: writes nowhere (no -o)`)) {
    check(
      output.split("/").pop() === spec.output,
      `${stage}: writes ${output}; the documented output is ${spec.output}`,
    );
    check(
      ![...outputs.values()].includes(output),
      `${stage}: writes ${output}, which an earlier stage wrote`,
    );
    outputs.set(stage, output);
  }

  // Every path the stage touches must lie on one of its mounts, because the root
  // filesystem is read-only and not shared between the pods.
  const paths = [input, options["--images"], options["--screening"], output].filter((path) => path !== undefined);
  for (const path of paths) {
    const mount = mountFor(container, path);
    if (check(mount !== undefined, `${stage}: ${path} is on no volume mount`)) {
      if (path === output) {
        check(mount.readOnly !== true, `${stage}: writes ${path} on the read-only mount ${mount.mountPath}`);
      }
    }
  }
  const photosMount = (container.volumeMounts ?? []).find((mount) => mount.mountPath === PHOTOS_MOUNT);
  if (photosMount !== undefined) {
    check(photosMount.readOnly === true, `${stage}: the photos mount ${PHOTOS_MOUNT} is not read-only`);
    check(
      photosMount.subPath === "{{workflow.parameters.photos}}",
      `${stage}: the photos mount's subPath is ${photosMount.subPath}; expected the photos parameter`,
    );
  }
  for (const mountPath of ["/data", "/tmp"]) {
    check(mountFor(container, mountPath) !== undefined, `${stage}: nothing is mounted at ${mountPath}`);
  }

  const requests = container.resources?.requests ?? {};
  const limits = container.resources?.limits ?? {};
  check(requests.cpu !== undefined, `${stage}: no CPU request`);
  check(requests.memory !== undefined, `${stage}: no memory request`);
  check(limits.memory !== undefined, `${stage}: no memory limit`);
  check(
    quantity(limits.memory) >= quantity(requests.memory),
    `${stage}: the memory limit ${limits.memory} is below the request ${requests.memory}`,
  );
  check(Number.isInteger(template.activeDeadlineSeconds), `${stage}: no activeDeadlineSeconds`);
  check(template.retryStrategy?.limit !== undefined, `${stage}: no retryStrategy with a limit`);
}

function checkParameters(manifest) {
  const declaredParameters = manifest.spec.arguments?.parameters ?? [];
  const declared = new Set(declaredParameters.map((parameter) => parameter.name));
  const references = JSON.stringify(manifest).matchAll(/\{\{workflow\.parameters\.([A-Za-z0-9_-]+)\}\}/g);
  const used = new Set([...references].map((match) => match[1]));
  for (const name of used) {
    check(declared.has(name), `{{workflow.parameters.${name}}} is used but not declared`);
  }
  for (const name of declared) {
    check(used.has(name), `the parameter ${name} is declared but never used`);
  }
  return Object.fromEntries(declaredParameters.map((parameter) => [parameter.name, parameter.value]));
}

function checkAgainstChart(manifest, stages, values, parameters) {
  check(
    isDeepStrictEqual(manifest.spec.securityContext, values.podSecurityContext),
    "spec.securityContext differs from the chart's podSecurityContext",
  );
  for (const [stage, template] of stages) {
    check(
      isDeepStrictEqual(template.container?.securityContext, values.securityContext),
      `${stage}: the container securityContext differs from the chart's securityContext`,
    );
    const environment = template.container?.env ?? [];
    const database = environment.find((variable) => variable.name === "KAI_DATABASE_URL");
    const secret = database?.valueFrom?.secretKeyRef;
    check(
      secret?.name === "{{workflow.parameters.database-secret}}" &&
        secret?.key === "{{workflow.parameters.database-secret-key}}",
      `${stage}: KAI_DATABASE_URL does not come from the database-secret parameters`,
    );
  }
  check(
    parameters["database-secret-key"] === values.database?.secretKey,
    `the database-secret-key default ${parameters["database-secret-key"]} differs from ` +
      `the chart's database.secretKey ${values.database?.secretKey}`,
  );
  check(
    parameters.tier === values.config?.DEFAULT_PARAMETER_SET,
    `the tier default ${parameters.tier} differs from ` +
      `the chart's DEFAULT_PARAMETER_SET ${values.config?.DEFAULT_PARAMETER_SET}`,
  );
}

function main() {
  if (process.argv.length !== 4) {
    console.error("usage: node validate.mjs WORKFLOW.yaml CHART_VALUES.yaml");
    process.exit(2);
  }
  const manifest = readYaml(process.argv[2]);
  const values = readYaml(process.argv[3]);

  validateSchema(manifest);
  check(manifest.kind === "WorkflowTemplate", `the kind is ${manifest.kind}; expected WorkflowTemplate`);
  check(
    manifest.metadata?.name === "kai-reconstruct",
    `the name is ${manifest.metadata?.name}; expected kai-reconstruct`,
  );
  const spec = manifest.spec ?? {};
  const templates = new Map((spec.templates ?? []).map((template) => [template.name, template]));
  const parameters = checkParameters(manifest);

  const stages = checkTasks(spec, templates);
  const photos = PHOTOS_MOUNT;
  const outputs = new Map();
  for (const [stage, template] of stages) {
    checkStage(stage, template, outputs, photos);
  }
  const exported = outputs.get("export");
  check(
    exported !== undefined && !exported.includes("/work/"),
    `export writes ${exported}, inside the work folder; expected the output folder`,
  );

  for (const path of SHARED_FIELDS) {
    const first = field(stages[0]?.[1], path);
    check(first !== undefined, `${stages[0]?.[0]}: ${path.join(".")} is not set`);
    for (const [stage, template] of stages.slice(1)) {
      check(
        isDeepStrictEqual(field(template, path), first),
        `${stage}: ${path.join(".")} differs from ${stages[0][0]}'s`,
      );
    }
  }

  // Dense matching and Poisson meshing hold the most data, so they get the largest
  // memory limits.
  const memory = new Map(
    stages.map(([stage, template]) => [stage, quantity(template.container?.resources?.limits?.memory)]),
  );
  for (const heavy of ["dense", "mesh"]) {
    for (const [stage, limit] of memory) {
      if (stage !== "dense" && stage !== "mesh") {
        check(memory.get(heavy) > limit, `${heavy}: its memory limit is not above ${stage}'s`);
      }
    }
  }

  let stageDeadlines = 0;
  for (const [, template] of stages) {
    stageDeadlines += template.activeDeadlineSeconds ?? 0;
  }
  check(
    Number.isInteger(spec.activeDeadlineSeconds) && spec.activeDeadlineSeconds > stageDeadlines,
    `spec.activeDeadlineSeconds ${spec.activeDeadlineSeconds} does not exceed the stages' ${stageDeadlines} s`,
  );

  checkAgainstChart(manifest, stages, values, parameters);

  if (failures.length > 0) {
    for (const failure of failures) {
      console.log(`FAILED: ${failure}`);
    }
    process.exit(1);
  }
  console.log(`invariants hold: kai recon ${STAGES.join(" -> ")}, each reading its predecessor's output`);
}

main();
