// The admin service's JSON (admin_json.h).
#include "admin_json.h"

#include <cstring>

namespace sn::daemon {

Status check_fields(const json& body, std::initializer_list<const char*> allowed) {
  if (!body.is_object()) return Status::invalid_argument("body", "must be a JSON object");
  for (auto it = body.begin(); it != body.end(); ++it) {
    bool known = false;
    for (const char* a : allowed) known = known || it.key() == a;
    if (!known) return Status::invalid_argument("'" + it.key() + "'", "unknown field");
  }
  return Status::ok();
}

Status read_string(const json& body, const char* field, std::string& out, bool required) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) {
    if (required) return Status::invalid_argument(std::string("'") + field + "'", "is required");
    return Status::ok();
  }
  if (!it->is_string()) return Status::invalid_argument(std::string("'") + field + "'", "must be a string");
  out = it->get<std::string>();
  if (required && out.empty()) return Status::invalid_argument(std::string("'") + field + "'", "must not be empty");
  return Status::ok();
}

Status read_optional_string(const json& body, const char* field, std::optional<std::string>& out) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return Status::ok();
  if (!it->is_string()) return Status::invalid_argument(std::string("'") + field + "'", "must be a string");
  out = it->get<std::string>();
  return Status::ok();
}

Status read_int(const json& body, const char* field, std::optional<int64_t>& out) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return Status::ok();
  if (!it->is_number_integer() || (it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX)) {
    return Status::invalid_argument(std::string("'") + field + "'", "must be an integer");
  }
  out = it->get<int64_t>();
  return Status::ok();
}

Status read_limits(const json& body, LimitsPatch& out) {
  for (const char* k : {"rpm", "tpm", "concurrency"}) {
    std::optional<int64_t> v;
    SN_RETURN_IF_ERROR(read_int(body, k, v));
    if (v && *v < 0) return Status::invalid_argument(std::string("'") + k + "'", "must be a non-negative integer");
    if (std::strcmp(k, "rpm") == 0) out.rpm = v;
    if (std::strcmp(k, "tpm") == 0) out.tpm = v;
    if (std::strcmp(k, "concurrency") == 0) out.concurrency = v;
  }
  if (auto it = body.find("models"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) return Status::invalid_argument("'models'", "must be an array of model ids");
    std::vector<std::string> models;
    for (const json& m : *it) {
      if (!m.is_string()) return Status::invalid_argument("'models'", "must be an array of model ids");
      models.push_back(m.get<std::string>());
    }
    out.models = std::move(models);
  }
  return Status::ok();
}

json limits_json(const storage::Limits& l) {
  return {{"rpm", l.rpm}, {"tpm", l.tpm}, {"concurrency", l.concurrency}, {"models", l.models}};
}

json tenant_json(const storage::TenantRecord& t) {
  return {{"name", t.name}, {"limits", limits_json(t.limits)}, {"created_us", t.created_us}};
}

json key_json(const storage::ApiKeyRecord& k) {
  return {{"key_id", k.key_id},         {"tenant", k.tenant},
          {"label", k.label},           {"limits", limits_json(k.limits)},
          {"created_us", k.created_us}, {"revoked", k.revoked_us.has_value()}};
}

json usage_row_json(const storage::UsageRow& u) {
  return {{"key_id", u.key_id},
          {"tenant", u.tenant},
          {"minute", u.minute},
          {"requests", u.requests},
          {"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens}};
}

json audit_json(const storage::AuditRecord& a) {
  return {{"seq", a.seq}, {"time_us", a.time_us}, {"actor", a.actor}, {"action", a.action}, {"detail", a.detail}};
}

json verification_json(const storage::AuditVerification& v) {
  return {{"verified", v.ok}, {"rows", v.rows}, {"first_bad_seq", v.first_bad_seq}, {"problem", v.problem}};
}

json model_record_json(const storage::ModelRecord& m) {
  return {{"id", m.id}, {"path", m.path}, {"sha256", m.sha256}, {"bytes", m.bytes}, {"added_us", m.added_us}};
}

json model_info_json(const ModelInfo& m) {
  json j = {{"id", m.id},
            {"path", m.path},
            {"sha256", m.sha256},
            {"bytes", m.bytes},
            {"added_us", m.added_us},
            {"in_catalog", m.in_catalog},
            {"loaded", m.loaded},
            {"loading", m.loading},
            {"autoload", m.autoload},
            {"in_flight", m.in_flight}};
  if (m.gguf) {
    j["architecture"] = m.gguf->architecture;
    j["quantization"] = m.gguf->quantization;
    j["context_length"] = m.gguf->context_length;
    j["parameters"] = m.gguf->parameters;
  }
  return j;
}

json import_json(const ImportJob& j) {
  return {{"import_id", j.import_id}, {"id", j.id},       {"path", j.path},   {"state", j.state},
          {"bytes", j.bytes},         {"total", j.total}, {"error", j.error}, {"started_us", j.started_us}};
}

json model_status_json(const ModelStatus& s) {
  return {{"id", s.id},
          {"running", s.running},
          {"waiting", s.waiting},
          {"steps", s.steps},
          {"tokens_generated", s.tokens_generated},
          {"kv_blocks_used", s.kv_blocks_used},
          {"kv_blocks", s.kv_blocks},
          {"host_tier_blocks", s.host_tier_blocks},
          {"disk_tier_blocks", s.disk_tier_blocks},
          {"kv_hit_rate", s.kv_hit_rate}};
}

json user_json(const storage::UserRecord& u) {
  return {{"username", u.username},
          {"role", u.role},
          {"created_us", u.created_us},
          {"last_login_us", u.last_login_us ? json(*u.last_login_us) : json(nullptr)}};
}

json hardware_json(const HardwareInfo& h) {
  json numa = json::array();
  for (const HardwareInfo::Numa& n : h.numa_nodes) {
    numa.push_back({{"index", n.index}, {"memory_bytes", n.memory_bytes}, {"cpus", n.cpus}});
  }
  json gpus = json::array();
  for (const HardwareInfo::Gpu& g : h.gpus) {
    gpus.push_back({{"name", g.name}, {"memory_total_bytes", g.memory_total_bytes}, {"memory_free_bytes", g.memory_free_bytes}});
  }
  json disks = json::array();
  for (const HardwareInfo::Disk& d : h.disks) {
    disks.push_back({{"tier", d.tier}, {"path", d.path}, {"total_bytes", d.total_bytes}, {"free_bytes", d.free_bytes}});
  }
  return {{"cpu",
           {{"model", h.cpu_model},
            {"packages", h.packages},
            {"cores", h.cores},
            {"threads", h.threads},
            {"isa", h.isa},
            {"kernel_family", h.isa},
            {"flags", h.cpu_flags}}},
          {"memory", {{"total_bytes", h.memory_total_bytes}, {"available_bytes", h.memory_available_bytes}}},
          {"numa_nodes", numa},
          {"gpus", gpus},
          {"kv_tiers", disks}};
}

json moderation_terms_json(const std::vector<storage::ModerationTerm>& terms) {
  json a = json::array();
  for (const storage::ModerationTerm& t : terms) a.push_back({{"term", t.term}, {"scope", t.scope}});
  return a;
}

}  // namespace sn::daemon
