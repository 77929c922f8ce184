// TaskThread (server/common/task_thread.h): tasks run on its own thread, in
// post order, and all of them before the destructor returns.
#include "server/common/task_thread.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace hr {
namespace {

TEST(TaskThreadTest, RunsTasksInPostOrderOffTheCallersThread) {
  std::vector<int> order;
  std::thread::id ran_on;
  absl::Notification done;
  {
    TaskThread t;
    for (int i = 0; i < 100; ++i) {
      t.Post([&order, &ran_on, i] {
        order.push_back(i);  // only the task thread touches it
        ran_on = std::this_thread::get_id();
      });
    }
    t.Post([&done] { done.Notify(); });
    done.WaitForNotification();
    EXPECT_NE(ran_on, std::this_thread::get_id());
    EXPECT_GE(t.tasks_run(), 100);  // the notifying task may still be running
  }
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(TaskThreadTest, TheDestructorRunsEveryPostedTaskAlsoThosePostedByTasks) {
  std::atomic<int> ran{0};
  absl::Notification release;
  {
    TaskThread t;
    // The first task holds the thread while the others queue up behind it.
    t.Post([&release] { release.WaitForNotification(); });
    for (int i = 0; i < 10; ++i) {
      t.Post([&t, &ran] {
        ++ran;
        t.Post([&ran] { ++ran; });  // posted during the drain
      });
    }
    release.Notify();
  }  // ~TaskThread: drains, then joins
  EXPECT_EQ(ran.load(), 20);
}

TEST(TaskThreadTest, PostsFromManyThreadsAllRun) {
  std::atomic<int> ran{0};
  {
    TaskThread t;
    std::vector<std::thread> posters;
    for (int p = 0; p < 8; ++p) {
      posters.emplace_back([&t, &ran] {
        for (int i = 0; i < 500; ++i) t.Post([&ran] { ++ran; });
      });
    }
    for (std::thread& p : posters) p.join();
  }
  EXPECT_EQ(ran.load(), 8 * 500);
}

}  // namespace
}  // namespace hr
