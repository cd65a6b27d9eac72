// Validates Argo Rollouts and prometheus-operator resources against their CRD
// schemas, as shipped by the @kubernetes-models packages (offline).
// stdin: [{where, doc}, ...]; stdout: one {where, ok, error} JSON line each.
import { AnalysisTemplate, Rollout } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = {
  "argoproj.io/v1alpha1/Rollout": Rollout,
  "argoproj.io/v1alpha1/AnalysisTemplate": AnalysisTemplate,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
for (const { where, doc } of JSON.parse(input)) {
  const Model = models[`${doc.apiVersion}/${doc.kind}`];
  let result = { where, ok: true };
  if (!Model) {
    result = { where, ok: false, error: `no schema for ${doc.apiVersion} ${doc.kind}` };
  } else {
    try {
      new Model(doc).validate();
    } catch (e) {
      result = { where, ok: false, error: e.message };
    }
  }
  console.log(JSON.stringify(result));
}
