#include "server/api/serving_health.h"

#include <grpcpp/health_check_service_interface.h>

#include "headroom/v1/headroom.grpc.pb.h"

namespace hr::api {

ServingHealth::ServingHealth() : service_(headroom::v1::Headroom::service_full_name()) {}

void ServingHealth::Attach(grpc::HealthCheckServiceInterface* health) {
  absl::MutexLock lock(&mu_);
  health_ = health;
  Publish();
}

void ServingHealth::WorkerLost() {
  absl::MutexLock lock(&mu_);
  lost_ = true;
  Publish();
}

void ServingHealth::BeginDrain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  Publish();
}

void ServingHealth::Publish() {
  if (health_ == nullptr) return;
  const bool serving = !lost_ && !draining_;
  health_->SetServingStatus(service_, serving);
  health_->SetServingStatus(serving);  // "" and every service set before
}

}  // namespace hr::api
