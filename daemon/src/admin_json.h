// The JSON language of the admin service, shared by its two transports (the Unix socket,
// admin.cpp; the HTTP admin API, admin_api.cpp), so they use the same field names: readers
// that refuse unknown fields and wrong types with a message naming the field, and the
// objects of daemon/ADMIN_API.md.
// Thread safety: free functions; safe concurrently.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "supernode/base/status.h"
#include "supernode/daemon/admin_service.h"

#include "openai_request.h"  // json

namespace sn::daemon {

// invalid_argument naming the first member of `body` not in `allowed` (or `body` not an
// object).
[[nodiscard]] Status check_fields(const json& body, std::initializer_list<const char*> allowed);
// A string member: absent gives `fallback` (or invalid_argument when required); a wrong
// type is refused naming the field.
[[nodiscard]] Status read_string(const json& body, const char* field, std::string& out, bool required = false);
[[nodiscard]] Status read_optional_string(const json& body, const char* field, std::optional<std::string>& out);
[[nodiscard]] Status read_int(const json& body, const char* field, std::optional<int64_t>& out);
// rpm, tpm, concurrency (non-negative integers) and models (an array of model ids).
[[nodiscard]] Status read_limits(const json& body, LimitsPatch& out);

[[nodiscard]] json limits_json(const storage::Limits& l);
[[nodiscard]] json tenant_json(const storage::TenantRecord& t);
[[nodiscard]] json key_json(const storage::ApiKeyRecord& k);
[[nodiscard]] json usage_row_json(const storage::UsageRow& u);
[[nodiscard]] json audit_json(const storage::AuditRecord& a);
[[nodiscard]] json verification_json(const storage::AuditVerification& v);
[[nodiscard]] json model_record_json(const storage::ModelRecord& m);
[[nodiscard]] json model_info_json(const ModelInfo& m);
[[nodiscard]] json import_json(const ImportJob& j);
[[nodiscard]] json model_status_json(const ModelStatus& s);
[[nodiscard]] json user_json(const storage::UserRecord& u);
[[nodiscard]] json hardware_json(const HardwareInfo& h);
[[nodiscard]] json moderation_terms_json(const std::vector<storage::ModerationTerm>& terms);

}  // namespace sn::daemon
