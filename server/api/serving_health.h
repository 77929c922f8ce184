// What the server answers to grpc.health.v1 (for the whole server, service
// "", and for headroom.v1.Headroom): from Attach() on, SERVING, and
// NOT_SERVING for good once a drain begins or any worker loses its device
// (before Attach(), gRPC's default service answers SERVING for "").
//
// Why a single lost worker already reports NOT_SERVING: a sticky device
// fault is cleared only by a new process. Kubernetes' readiness probe then
// takes the pod out of rotation and its liveness probe restarts it
// (deploy/k8s/deployment.yaml); SIGTERM drains it first, so the requests the
// other workers run still finish. Until then those workers keep serving
// whatever reaches them; the lost worker's requests end UNAVAILABLE.
//
// Thread-safety: every method may be called from any thread (workers report
// losses from their own threads, possibly before Attach()).
// Ownership: borrows the health service, which must outlive this object's
// last call: the grpc::Server that owns it is destroyed after the workers
// have stopped (a status set after its Shutdown() is ignored).
#ifndef HEADROOM_SERVER_API_SERVING_HEALTH_H_
#define HEADROOM_SERVER_API_SERVING_HEALTH_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace grpc {
class HealthCheckServiceInterface;
}  // namespace grpc

namespace hr::api {

class ServingHealth {
 public:
  // The services reported besides "": the Headroom service's full name.
  ServingHealth();

  // The server listens: reports SERVING, unless a worker was lost or a
  // drain began before.
  void Attach(grpc::HealthCheckServiceInterface* health);
  // NOT_SERVING from now on.
  void WorkerLost();
  void BeginDrain();

 private:
  void Publish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string service_;
  mutable absl::Mutex mu_;
  grpc::HealthCheckServiceInterface* health_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace hr::api

#endif  // HEADROOM_SERVER_API_SERVING_HEALTH_H_
